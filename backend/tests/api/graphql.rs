//! The GraphQL read API against the real server, on SQLite and PostgreSQL (DESIGN §6):
//! who may see and do what, tenant isolation, and numbers that add up with what was ingested.

use std::collections::HashSet;

use crate::common;
use crate::common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, data, error_code, graphql, login, report,
};
use serde_json::{Value, json};

on_both_databases!(
    the_permission_matrix_holds_for_every_family,
    tenants_see_nothing_of_each_other,
    groups_health_and_series_add_up_to_what_was_ingested,
    sign_in_is_rate_limited_and_gives_nothing_away,
    mutations_change_apps_keys_and_tokens_and_are_audited,
    the_reports_api_is_off_when_reports_are_disabled,
);

const MEMBER_PASSWORD: &str = "member-password-123";

/// Creates a user through the API as the admin and signs them in.
async fn user(
    app: &TestApp,
    admin: &str,
    email: &str,
    role: &str,
    app_ids: Value,
) -> (String, String) {
    let answer = graphql(
        app,
        Some(admin),
        "mutation($e: String!, $p: String!, $r: Role!, $a: [ID!]) {
           createUser(email: $e, password: $p, role: $r, appIds: $a) { id } }",
        json!({ "e": email, "p": MEMBER_PASSWORD, "r": role, "a": app_ids }),
    )
    .await;
    let id = data(&answer)["createUser"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, login(app, email, MEMBER_PASSWORD).await)
}

async fn ci_token(app: &TestApp, admin: &str, app_ids: Value) -> String {
    let answer = graphql(
        app,
        Some(admin),
        "mutation($a: [ID!]) { createApiToken(name: \"ci\", appIds: $a) { token apiToken { prefix } } }",
        json!({ "a": app_ids }),
    )
    .await;
    let token = data(&answer)["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("rwt_") && token.len() == 68, "{token}");
    assert!(
        token.starts_with(
            data(&answer)["createApiToken"]["apiToken"]["prefix"]
                .as_str()
                .unwrap()
        )
    );
    token
}

/// A session JWT signed with the server's own key (kept in the data dir) but long expired.
fn expired_session(app: &TestApp, user_id: i64, account_id: i64) -> String {
    let secret = std::fs::read_to_string(app.data_dir.path().join("jwt_secret")).unwrap();
    let now = chrono::Utc::now().timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": user_id.to_string(), "acc": account_id, "ver": 0, "iat": now - 7200, "exp": now - 3600 }),
        &jsonwebtoken::EncodingKey::from_secret(&hex::decode(secret.trim()).unwrap()),
    )
    .unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    Admin,
    MemberWithAccess,
    MemberWithoutAccess,
    TokenInScope,
    TokenOutOfScope,
    Nobody,
    Expired,
    Tampered,
    DisabledUser,
    BeforePasswordChange,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Family {
    Me,
    AppList,
    AppRead,
    Reports,
    AppChange,
    AccountChange,
    AuditLog,
}

/// `None` when the caller may, else the expected code.
fn expected(caller: Caller, family: Family) -> Option<&'static str> {
    use Caller::*;
    use Family::*;
    match caller {
        Nobody | Expired | Tampered | DisabledUser | BeforePasswordChange => {
            Some("UNAUTHENTICATED")
        }
        Admin => None,
        MemberWithAccess => {
            matches!(family, AppChange | AccountChange | AuditLog).then_some("FORBIDDEN")
        }
        MemberWithoutAccess => matches!(
            family,
            AppRead | Reports | AppChange | AccountChange | AuditLog
        )
        .then_some("FORBIDDEN"),
        TokenInScope => {
            matches!(family, Me | AppChange | AccountChange | AuditLog).then_some("FORBIDDEN")
        }
        TokenOutOfScope => (family != AppList).then_some("FORBIDDEN"),
    }
}

async fn the_permission_matrix_holds_for_every_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (editor, hash) = (
        app.app_id.to_string(),
        ingest_with_details(&app, b"{\"trace\": 1}").await,
    );
    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let other = data(
        &graphql(
            &app,
            Some(&admin),
            "mutation { createApp(name: \"other\") { id } }",
            json!({}),
        )
        .await,
    )["createApp"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, with_access) = user(&app, &admin, "with@example.com", "MEMBER", json!([editor])).await;
    let (_, without_access) = user(&app, &admin, "without@example.com", "MEMBER", json!([])).await;
    let in_scope = ci_token(&app, &admin, json!([editor])).await;
    let out_of_scope = ci_token(&app, &admin, json!([other])).await;
    let admin_id = app
        .scalar(&format!(
            "SELECT id FROM users WHERE email = '{ADMIN_EMAIL}'"
        ))
        .await;
    let account_id = app.scalar("SELECT account_id FROM users LIMIT 1").await;
    let expired = expired_session(&app, admin_id, account_id);
    let tampered = {
        let mut token = admin.clone();
        let last = token.pop().unwrap();
        token.push(if last == 'A' { 'B' } else { 'A' });
        token
    };
    let (gone_id, disabled) =
        user(&app, &admin, "gone@example.com", "MEMBER", json!([editor])).await;
    let answer = graphql(
        &app,
        Some(&admin),
        "mutation($u: ID!) { setUserDisabled(userId: $u, disabled: true) { disabled } }",
        json!({ "u": gone_id }),
    )
    .await;
    assert_eq!(data(&answer)["setUserDisabled"]["disabled"], json!(true));
    let (_, before_change) = user(
        &app,
        &admin,
        "changer@example.com",
        "MEMBER",
        json!([editor]),
    )
    .await;
    let changed = graphql(
        &app,
        Some(&before_change),
        "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { token } }",
        json!({ "c": MEMBER_PASSWORD, "n": "a-brand-new-password" }),
    )
    .await;
    let after_change = data(&changed)["changePassword"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        error_code(&graphql(&app, Some(&after_change), "{ me { email } }", json!({})).await),
        None
    );

    let callers = [
        (Caller::Admin, Some(admin.clone())),
        (Caller::MemberWithAccess, Some(with_access)),
        (Caller::MemberWithoutAccess, Some(without_access)),
        (Caller::TokenInScope, Some(in_scope)),
        (Caller::TokenOutOfScope, Some(out_of_scope)),
        (Caller::Nobody, None),
        (Caller::Expired, Some(expired)),
        (Caller::Tampered, Some(tampered)),
        (Caller::DisabledUser, Some(disabled)),
        (Caller::BeforePasswordChange, Some(before_change)),
    ];
    let vars = json!({ "app": editor, "hash": hash });
    let operations: Vec<(Family, &str, String)> = vec![
        (Family::Me, "me", "{ me { email role } }".to_owned()),
        (Family::AppList, "apps", "{ apps { id name } }".to_owned()),
        (Family::AppRead, "app", "query($app: ID!) { app(id: $app) { id name } }".to_owned()),
        (Family::Reports, "reportGroups", "query($app: ID!) { reportGroups(appId: $app) { edges { node { count } } } }".to_owned()),
        (Family::Reports, "rolloutHealth", "query($app: ID!) { rolloutHealth(appId: $app, groupBy: [VERSION]) { reports } }".to_owned()),
        (Family::Reports, "timeSeries", "query($app: ID!) { timeSeries(appId: $app) { reports } }".to_owned()),
        (Family::Reports, "groupBlobs", "query($app: ID!, $hash: String!) { groupBlobs(appId: $app, groupHash: $hash) { url } }".to_owned()),
        (Family::AppChange, "updateApp", "mutation($app: ID!) { updateApp(id: $app, reportsEnabled: true) { reportsEnabled } }".to_owned()),
        (Family::AppChange, "rotateReportKey", "mutation($app: ID!) { rotateReportKey(appId: $app) { key } }".to_owned()),
        (Family::AccountChange, "createApiToken", "mutation { createApiToken(name: \"x\") { token } }".to_owned()),
        (Family::AuditLog, "auditLog", "{ auditLog { action } }".to_owned()),
    ];
    for (caller, bearer) in &callers {
        for (family, field, query) in &operations {
            let answer = graphql(&app, bearer.as_deref(), query, vars.clone()).await;
            let want = expected(*caller, *family);
            assert_eq!(error_code(&answer), want, "{caller:?} {field}: {answer}");
            if want.is_none() {
                assert!(
                    !answer["data"][field].is_null(),
                    "{caller:?} {field}: {answer}"
                );
            } else {
                // Denied answers carry no data and no internals.
                assert!(
                    answer["data"].is_null() || answer["data"][field].is_null(),
                    "{answer}"
                );
            }
        }
        // createUser is an account change too; each caller tries its own email.
        let email = format!("new-{caller:?}@example.com").to_lowercase();
        let answer = graphql(
            &app,
            bearer.as_deref(),
            "mutation($e: String!) { createUser(email: $e, password: \"long-enough-password\", role: MEMBER) { id } }",
            json!({ "e": email }),
        )
        .await;
        assert_eq!(
            error_code(&answer),
            expected(*caller, Family::AccountChange),
            "{caller:?} createUser: {answer}"
        );
    }

    // What each reader sees in the lists.
    let names = |answer: Value| -> Vec<String> {
        data(&answer)["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(
            graphql(
                &app,
                Some(&callers[0].1.clone().unwrap()),
                "{ apps { name } }",
                json!({})
            )
            .await
        ),
        ["editor", "other"]
    );
    assert_eq!(
        names(
            graphql(
                &app,
                callers[1].1.as_deref(),
                "{ apps { name } }",
                json!({})
            )
            .await
        ),
        ["editor"]
    );
    assert!(
        names(
            graphql(
                &app,
                callers[2].1.as_deref(),
                "{ apps { name } }",
                json!({})
            )
            .await
        )
        .is_empty()
    );
    assert_eq!(
        names(
            graphql(
                &app,
                callers[3].1.as_deref(),
                "{ apps { name } }",
                json!({})
            )
            .await
        ),
        ["editor"]
    );
    assert_eq!(
        names(
            graphql(
                &app,
                callers[4].1.as_deref(),
                "{ apps { name } }",
                json!({})
            )
            .await
        ),
        ["other"]
    );
    let groups = graphql(
        &app,
        callers[1].1.as_deref(),
        &operations[3].2,
        vars.clone(),
    )
    .await;
    assert_eq!(
        data(&groups)["reportGroups"]["edges"][0]["node"]["count"],
        json!(1)
    );
    app.stop().await;
}

/// Sends one crash report with details; returns its group hash.
async fn ingest_with_details(app: &TestApp, details: &[u8]) -> String {
    let mut body = report("2.0.0", "stable", "linux", "SIGSEGV");
    body["details"] = json!({ "encoding": "gzip", "data": common::gzip_base64(details) });
    let (status, answer) = common::json(app.report(&body).await).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["details_stored"], json!(true));
    answer["group"].as_str().unwrap().to_owned()
}

async fn tenants_see_nothing_of_each_other(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.report(&report("1.0.0", "stable", "linux", "SIGSEGV"))
        .await;
    let ours = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    rollwatch::accounts::create_account(
        &app.db,
        "acme",
        "boss@acme.example",
        Some("acme-admin-password"),
    )
    .await
    .unwrap();
    let theirs = login(&app, "boss@acme.example", "acme-admin-password").await;
    // The same app name in the other account, with reports of its own.
    let created = graphql(
        &app,
        Some(&theirs),
        "mutation { createApp(name: \"editor\") { id newReportKey { key } } }",
        json!({}),
    )
    .await;
    let their_app = data(&created)["createApp"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let their_key = data(&created)["createApp"]["newReportKey"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        let (status, _) = common::json(
            app.post(
                "/reports/ingest",
                Some(&their_key),
                &report("9.9.9", "beta", "macos", "boom"),
            )
            .await,
        )
        .await;
        assert_eq!(status, 202);
    }

    let their_apps = graphql(&app, Some(&theirs), "{ apps { id name } }", json!({})).await;
    assert_eq!(
        data(&their_apps)["apps"],
        json!([{ "id": their_app, "name": "editor" }])
    );
    let counts = |answer: Value| -> Vec<i64> {
        data(&answer)["reportGroups"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["count"].as_i64().unwrap())
            .collect()
    };
    let groups = "query($a: ID!) { reportGroups(appId: $a) { edges { node { count version } } } }";
    assert_eq!(
        counts(graphql(&app, Some(&theirs), groups, json!({ "a": their_app })).await),
        [3]
    );
    assert_eq!(
        counts(
            graphql(
                &app,
                Some(&ours),
                groups,
                json!({ "a": app.app_id.to_string() })
            )
            .await
        ),
        [1]
    );

    // Their app, and an id that does not exist, answer exactly alike.
    let probes = [
        (groups, json!({ "a": their_app })),
        (
            "query($a: ID!) { app(id: $a) { name } }",
            json!({ "a": their_app }),
        ),
        (
            "mutation($a: ID!) { rotateReportKey(appId: $a) { key } }",
            json!({ "a": their_app }),
        ),
        (
            "mutation($a: ID!) { deleteApp(id: $a) }",
            json!({ "a": their_app }),
        ),
        (
            "mutation($a: ID!) { createApiToken(name: \"t\", appIds: [$a]) { token } }",
            json!({ "a": their_app }),
        ),
    ];
    for (query, vars) in probes {
        let denied = graphql(&app, Some(&ours), query, vars).await;
        let missing = graphql(&app, Some(&ours), query, json!({ "a": "987654321" })).await;
        assert_eq!(error_code(&denied), Some("FORBIDDEN"), "{query}: {denied}");
        assert_eq!(
            denied["errors"][0]["message"], missing["errors"][0]["message"],
            "{query}"
        );
        assert_eq!(
            denied["errors"][0]["extensions"], missing["errors"][0]["extensions"],
            "{query}"
        );
    }
    let their_admin = app
        .scalar("SELECT id FROM users WHERE email = 'boss@acme.example'")
        .await;
    let access = "mutation($u: ID!) { setUserAccess(userId: $u, appIds: []) { id } }";
    let denied = graphql(
        &app,
        Some(&ours),
        access,
        json!({ "u": their_admin.to_string() }),
    )
    .await;
    let missing = graphql(&app, Some(&ours), access, json!({ "u": "987654321" })).await;
    assert_eq!(error_code(&denied), Some("FORBIDDEN"));
    assert_eq!(denied["errors"][0], missing["errors"][0]);

    // Users, tokens and the audit log stay in their account.
    let users = graphql(&app, Some(&theirs), "{ users { email } }", json!({})).await;
    assert_eq!(
        data(&users)["users"],
        json!([{ "email": "boss@acme.example" }])
    );
    let log = graphql(
        &app,
        Some(&ours),
        "{ auditLog { action targetId } }",
        json!({}),
    )
    .await;
    assert!(
        data(&log)["auditLog"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["targetId"] != json!(their_app)),
        "{log}"
    );
    app.stop().await;
}

async fn groups_health_and_series_add_up_to_what_was_ingested(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "10000")],
    )
    .await;
    // (version, channel, platform, event type, reason, how many)
    let sent = [
        ("1.0.0", "stable", "windows", "crash", "A", 5),
        ("1.0.0", "stable", "linux", "crash", "A", 3),
        ("1.0.0", "beta", "linux", "update_failed", "E1", 2),
        ("1.1.0", "stable", "windows", "crash", "B", 4),
        ("1.1.0", "stable", "windows", "install_failed", "I", 1),
        ("1.1.0", "beta", "macos", "crash", "C", 2),
        ("1.1.0", "beta", "macos", "crash", "D", 1),
    ];
    let total: i64 = sent.iter().map(|s| s.5).sum();
    for (version, channel, platform, kind, reason, n) in sent {
        let mut body = report(version, channel, platform, reason);
        body["event"]["type"] = json!(kind);
        for _ in 0..n {
            assert_eq!(app.report(&body).await.status(), 202);
        }
    }
    let usage = |version: &str, channel: &str, kind: &str, count: i64| {
        json!({
            "application": { "name": "editor", "version": version, "channel": channel },
            "system": { "platform": "windows", "arch": "x86_64" },
            "kind": kind, "count": count,
        })
    };
    for body in [
        usage("1.0.0", "stable", "session", 500),
        usage("1.1.0", "stable", "session", 200),
        usage("1.0.0", "beta", "update_succeeded", 8),
        usage("2.0.0", "stable", "session", 50),
    ] {
        assert_eq!(
            app.post("/reports/usage", Some(&app.key), &body)
                .await
                .status(),
            202
        );
    }
    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let id = app.app_id.to_string();

    // Every group once over pages of 2, in a stable order; the counts add up.
    let page = "query($a: ID!, $after: String, $o: GroupOrder) {
        reportGroups(appId: $a, first: 2, after: $after, orderBy: $o) {
          totalCount edges { cursor node { groupHash count } } pageInfo { hasNextPage endCursor } } }";
    for order in ["LAST_SEEN", "COUNT"] {
        let (mut after, mut seen, mut sum, mut pages) = (Value::Null, HashSet::new(), 0, 0);
        let mut last_count = i64::MAX;
        loop {
            let answer = graphql(
                &app,
                Some(&admin),
                page,
                json!({ "a": id, "after": after, "o": order }),
            )
            .await;
            let connection = &data(&answer)["reportGroups"];
            assert_eq!(connection["totalCount"], json!(7));
            for edge in connection["edges"].as_array().unwrap() {
                assert!(
                    seen.insert(edge["node"]["groupHash"].as_str().unwrap().to_owned()),
                    "repeated: {answer}"
                );
                let count = edge["node"]["count"].as_i64().unwrap();
                if order == "COUNT" {
                    assert!(count <= last_count, "not sorted: {answer}");
                    last_count = count;
                }
                sum += count;
            }
            pages += 1;
            if connection["pageInfo"]["hasNextPage"] == json!(false) {
                break;
            }
            after = connection["pageInfo"]["endCursor"].clone();
        }
        assert_eq!((seen.len(), sum, pages), (7, total, 4), "{order}");
    }
    let filtered = graphql(
        &app,
        Some(&admin),
        "query($a: ID!) { reportGroups(appId: $a, filter: { platform: \"MacOS\", eventType: CRASH }) { totalCount edges { node { count reason } } } }",
        json!({ "a": id }),
    )
    .await;
    assert_eq!(data(&filtered)["reportGroups"]["totalCount"], json!(2));
    let bad_cursor = graphql(
        &app,
        Some(&admin),
        page,
        json!({ "a": id, "after": "garbage" }),
    )
    .await;
    assert_eq!(error_code(&bad_cursor), Some("BAD_USER_INPUT"));

    // Rollout health: the cells add up, whatever the grouping, and rates follow DESIGN §8.
    let health = "query($a: ID!, $by: [Dimension!]!, $f: ReportFilter) { rolloutHealth(appId: $a, groupBy: $by, filter: $f) {
        version channel platform arch eventType reports crashes updateFailures installFailures
        sessions updatesSucceeded crashRate updateFailureRate installFailureRate } }";
    for by in [
        json!([]),
        json!(["VERSION"]),
        json!(["VERSION", "CHANNEL"]),
        json!(["PLATFORM", "ARCH"]),
        json!(["EVENT_TYPE"]),
        json!(["VERSION", "CHANNEL", "PLATFORM", "ARCH", "EVENT_TYPE"]),
    ] {
        let answer = graphql(&app, Some(&admin), health, json!({ "a": id, "by": by })).await;
        let cells = data(&answer)["rolloutHealth"].as_array().unwrap().clone();
        let reports: i64 = cells.iter().map(|c| c["reports"].as_i64().unwrap()).sum();
        assert_eq!(reports, total, "{by}: {answer}");
    }
    let answer = graphql(
        &app,
        Some(&admin),
        health,
        json!({ "a": id, "by": ["VERSION", "CHANNEL"] }),
    )
    .await;
    let cells = data(&answer)["rolloutHealth"].as_array().unwrap();
    let cell = |v: &str, c: &str| {
        cells
            .iter()
            .find(|x| x["version"] == json!(v) && x["channel"] == json!(c))
            .unwrap()
            .clone()
    };
    let stable_1_0 = cell("1.0.0", "stable");
    assert_eq!(
        (
            stable_1_0["crashes"].as_i64(),
            stable_1_0["sessions"].as_i64()
        ),
        (Some(8), Some(500))
    );
    assert_eq!(stable_1_0["crashRate"].as_f64(), Some(8.0 / 500.0));
    assert_eq!(stable_1_0["platform"], Value::Null);
    let beta_1_0 = cell("1.0.0", "beta");
    assert_eq!(beta_1_0["updateFailureRate"].as_f64(), Some(2.0 / 10.0));
    assert_eq!(beta_1_0["crashRate"], Value::Null, "no sessions, no rate");
    let healthy = cell("2.0.0", "stable");
    assert_eq!(
        (
            healthy["reports"].as_i64(),
            healthy["sessions"].as_i64(),
            healthy["crashRate"].as_f64()
        ),
        (Some(0), Some(50), Some(0.0))
    );
    let crashes_only = graphql(
        &app,
        Some(&admin),
        health,
        json!({ "a": id, "by": ["EVENT_TYPE"], "f": { "eventType": "CRASH" } }),
    )
    .await;
    let crash_cells = data(&crashes_only)["rolloutHealth"].as_array().unwrap();
    assert_eq!(
        crash_cells
            .iter()
            .map(|c| c["reports"].as_i64().unwrap())
            .sum::<i64>(),
        15
    );

    // Time series: all of it falls in this hour and this day.
    let series = "query($a: ID!, $i: Interval, $f: ReportFilter) { timeSeries(appId: $a, interval: $i, filter: $f) { at reports crashes updateFailures installFailures sessions } }";
    for interval in ["HOUR", "DAY"] {
        let answer = graphql(
            &app,
            Some(&admin),
            series,
            json!({ "a": id, "i": interval }),
        )
        .await;
        let points = data(&answer)["timeSeries"].as_array().unwrap();
        assert!(points.len() <= 2, "{answer}");
        let sum = |field: &str| {
            points
                .iter()
                .map(|p| p[field].as_i64().unwrap())
                .sum::<i64>()
        };
        assert_eq!(
            (
                sum("reports"),
                sum("crashes"),
                sum("updateFailures"),
                sum("installFailures"),
                sum("sessions")
            ),
            (total, 15, 2, 1, 750),
            "{interval}"
        );
    }
    let future = graphql(
        &app,
        Some(&admin),
        series,
        json!({ "a": id, "f": { "since": "2999-01-01T00:00:00Z" } }),
    )
    .await;
    assert_eq!(data(&future)["timeSeries"], json!([]));

    // One group, by its hash: its own series, and only it among the groups.
    let top = graphql(
        &app,
        Some(&admin),
        "query($a: ID!) { reportGroups(appId: $a, first: 1, orderBy: COUNT) { nodes { groupHash count } } }",
        json!({ "a": id }),
    )
    .await;
    let top = data(&top)["reportGroups"]["nodes"][0].clone();
    let one_group = json!({ "groupHash": top["groupHash"] });
    let answer = graphql(
        &app,
        Some(&admin),
        series,
        json!({ "a": id, "f": one_group }),
    )
    .await;
    let reports: i64 = data(&answer)["timeSeries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reports"].as_i64().unwrap())
        .sum();
    assert!(
        top["count"].as_i64().unwrap() < total,
        "the filter must narrow"
    );
    assert_eq!(reports, top["count"].as_i64().unwrap(), "{answer}");
    let only = graphql(
        &app,
        Some(&admin),
        "query($a: ID!, $f: ReportFilter) { reportGroups(appId: $a, filter: $f) { nodes { groupHash } } }",
        json!({ "a": id, "f": one_group }),
    )
    .await;
    assert_eq!(
        data(&only)["reportGroups"]["nodes"],
        json!([{ "groupHash": top["groupHash"] }])
    );
    app.stop().await;
}

async fn sign_in_is_rate_limited_and_gives_nothing_away(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let attempt = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let started = std::time::Instant::now();
            let answer = common::login_attempt(app, email, password).await;
            (answer, started.elapsed())
        }
    };
    let (wrong_password, _) = attempt(ADMIN_EMAIL, "not-the-password").await;
    let (wrong_email, _) = attempt("nobody@example.com", "not-the-password").await;
    assert_eq!(error_code(&wrong_password), Some("UNAUTHENTICATED"));
    assert_eq!(wrong_password["errors"], wrong_email["errors"]);
    // The same argon2 work either way: an unknown email is not answered faster.
    let mut password_times = Vec::new();
    let mut email_times = Vec::new();
    for _ in 0..3 {
        password_times.push(attempt(ADMIN_EMAIL, "still-not-it").await.1);
        email_times.push(attempt("ghost@example.com", "still-not-it").await.1);
    }
    password_times.sort();
    email_times.sort();
    assert!(
        email_times[1] * 3 >= password_times[1],
        "unknown email {:?} vs wrong password {:?}",
        email_times,
        password_times
    );

    // Ten attempts a minute per email (four made above): the eleventh is refused even with
    // the right password.
    for _ in 0..6 {
        attempt(ADMIN_EMAIL, "guess").await;
    }
    let (limited, _) = attempt(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited}");
    assert!(
        limited["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1
    );
    app.stop().await;
}

async fn mutations_change_apps_keys_and_tokens_and_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let id = app.app_id.to_string();
    let hash = ingest_with_details(&app, b"details").await;

    // Rotating gives a key shown once that works; the old key stops at once.
    let rotated = graphql(
        &app,
        Some(&admin),
        "mutation($a: ID!) { rotateReportKey(appId: $a) { key prefix } }",
        json!({ "a": id }),
    )
    .await;
    let key = data(&rotated)["rotateReportKey"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = report("1.0.0", "stable", "linux", "X");
    assert_eq!(
        app.post("/reports/ingest", Some(&app.key), &body)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.post("/reports/ingest", Some(&key), &body)
            .await
            .status(),
        202
    );
    let listed = graphql(
        &app,
        Some(&admin),
        "query($a: ID!) { app(id: $a) { reportKey { prefix } } }",
        json!({ "a": id }),
    )
    .await;
    assert_eq!(
        data(&listed)["app"]["reportKey"]["prefix"],
        data(&rotated)["rotateReportKey"]["prefix"]
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM report_keys WHERE key_hash LIKE '%{}%'",
            &key[4..]
        ))
        .await,
        0,
        "keys are stored hashed"
    );

    // Switching reports off answers 403 to ingestion at once; renaming keeps the name unique.
    graphql(
        &app,
        Some(&admin),
        "mutation($a: ID!) { updateApp(id: $a, reportsEnabled: false) { id } }",
        json!({ "a": id }),
    )
    .await;
    assert_eq!(
        app.post("/reports/ingest", Some(&key), &body)
            .await
            .status(),
        403
    );
    let dup = graphql(
        &app,
        Some(&admin),
        "mutation { createApp(name: \"editor\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&dup), Some("BAD_USER_INPUT"));
    let revoked = graphql(
        &app,
        Some(&admin),
        "mutation($a: ID!) { revokeReportKey(appId: $a) }",
        json!({ "a": id }),
    )
    .await;
    assert_eq!(data(&revoked)["revokeReportKey"], json!(true));

    // A CI token works until revoked, or until it expires.
    let token = ci_token(&app, &admin, json!([id])).await;
    assert_eq!(
        error_code(&graphql(&app, Some(&token), "{ apps { id } }", json!({})).await),
        None
    );
    let token_id = app
        .scalar("SELECT MAX(id) FROM api_tokens")
        .await
        .to_string();
    graphql(
        &app,
        Some(&admin),
        "mutation($t: ID!) { revokeApiToken(id: $t) }",
        json!({ "t": token_id }),
    )
    .await;
    assert_eq!(
        error_code(&graphql(&app, Some(&token), "{ apps { id } }", json!({})).await),
        Some("UNAUTHENTICATED")
    );
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let expiring = graphql(
        &app,
        Some(&admin),
        "mutation($x: DateTime) { createApiToken(name: \"short\", expiresAt: $x) { token } }",
        json!({ "x": soon }),
    )
    .await;
    let expiring = data(&expiring)["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        error_code(&graphql(&app, Some(&expiring), "{ apps { id } }", json!({})).await),
        None
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        error_code(&graphql(&app, Some(&expiring), "{ apps { id } }", json!({})).await),
        Some("UNAUTHENTICATED")
    );
    let past = graphql(
        &app,
        Some(&admin),
        "mutation { createApiToken(name: \"old\", expiresAt: \"2000-01-01T00:00:00Z\") { token } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&past), Some("BAD_USER_INPUT"));

    // The last admin cannot lock the account out.
    let me = graphql(&app, Some(&admin), "{ me { id } }", json!({})).await;
    let demote = graphql(
        &app,
        Some(&admin),
        "mutation($u: ID!) { setUserRole(userId: $u, role: MEMBER) { role } }",
        json!({ "u": data(&me)["me"]["id"] }),
    )
    .await;
    assert_eq!(error_code(&demote), Some("BAD_USER_INPUT"));

    // Deleting the app removes its groups and blob files.
    let blob_files = || walk(&app.data_dir.path().join("blobs"));
    assert_eq!(blob_files(), 1);
    let deleted = graphql(
        &app,
        Some(&admin),
        "mutation($a: ID!) { deleteApp(id: $a) }",
        json!({ "a": id }),
    )
    .await;
    assert_eq!(data(&deleted)["deleteApp"], json!(true));
    assert_eq!(blob_files(), 0);
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM report_groups WHERE group_hash = '{hash}'"
        ))
        .await,
        0
    );

    // Every change is in the audit log, newest first, with who did it.
    let log = graphql(
        &app,
        Some(&admin),
        "{ auditLog(first: 100) { actor action targetType } }",
        json!({}),
    )
    .await;
    let actions: Vec<&str> = data(&log)["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "login",
        "rotate_report_key",
        "update_app",
        "revoke_report_key",
        "create_api_token",
        "revoke_api_token",
        "delete_app",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    assert_eq!(actions[0], "delete_app");
    assert!(
        data(&log)["auditLog"][0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("user:")
    );
    app.stop().await;
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

async fn the_reports_api_is_off_when_reports_are_disabled(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("REPORTS_ENABLED", "false")]).await;
    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let groups = graphql(
        &app,
        Some(&admin),
        "query($a: ID!) { reportGroups(appId: $a) { totalCount } }",
        json!({ "a": app.app_id.to_string() }),
    )
    .await;
    assert_eq!(error_code(&groups), Some("NOT_FOUND"), "{groups}");
    let apps = graphql(&app, Some(&admin), "{ apps { name } }", json!({})).await;
    assert_eq!(data(&apps)["apps"], json!([{ "name": "editor" }]));
    app.stop().await;
}

#[tokio::test]
async fn deep_and_malformed_requests_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "ofType { ".repeat(20),
        " }".repeat(20)
    );
    let answer = graphql(&app, None, &deep, json!({})).await;
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{answer}"
    );
    let not_json = app
        .client
        .post(app.url("/graphql"))
        .body("{ me { id } }")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    app.stop().await;
}
