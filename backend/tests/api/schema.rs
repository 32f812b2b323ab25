//! `backend/schema.graphql` is what `rollwatch schema` prints: CI scripts and the web app
//! rely on it, so a change to the schema must change the committed file too.

#[test]
fn the_committed_schema_is_the_one_served() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollwatch"))
        .arg("schema")
        .output()
        .expect("rollwatch runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("backend/schema.graphql exists");
    assert!(
        printed == committed,
        "backend/schema.graphql is stale: run `cargo run -p rollwatch -- schema > backend/schema.graphql`"
    );
    for name in [
        "me: User!",
        "apps: [App!]!",
        "app(id: ID!): App!",
        "reportGroups(appId: ID!, filter: ReportFilter",
        "rolloutHealth(appId: ID!, groupBy: [Dimension!]!, filter: ReportFilter): [HealthCell!]!",
        "timeSeries(appId: ID!, filter: ReportFilter, interval: Interval): [SeriesPoint!]!",
        "groupBlobs(appId: ID!, groupHash: String!): [Blob!]!",
        "login(email: String!, password: String!): Session!",
        "createApp(name: String!): App!",
        "updateApp(id: ID!, name: String, reportsEnabled: Boolean): App!",
        "deleteApp(id: ID!): Boolean!",
        "rotateReportKey(appId: ID!): NewReportKey!",
        "revokeReportKey(appId: ID!): Boolean!",
        "createUser(email: String!, password: String!, role: Role!, appIds: [ID!]): User!",
        "setUserAccess(userId: ID!, appIds: [ID!]!): User!",
        "createApiToken(name: String!, appIds: [ID!]",
        "revokeApiToken(id: ID!): Boolean!",
    ] {
        assert!(
            printed.contains(name),
            "the contract of DESIGN §6 names {name}"
        );
    }
}
