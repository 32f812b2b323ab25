//! Where a Sentry SDK puts its public key: the `X-Sentry-Auth` header, the `sentry_key` query
//! parameter, or the envelope header's `dsn`.

/// The `sentry_key` of an `X-Sentry-Auth: Sentry sentry_key=…, sentry_version=7, …` header.
pub fn key_from_auth_header(value: &str) -> Option<&str> {
    auth_header_field(value, "sentry_key")
}

/// One field (`sentry_key`, `sentry_client`) of an `X-Sentry-Auth` header.
pub fn auth_header_field<'v>(value: &'v str, field: &str) -> Option<&'v str> {
    let fields = value.trim().strip_prefix("Sentry")?;
    // Some SDKs omit the space after the scheme's fields' commas; split on commas and trim.
    fields
        .split(',')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| name.trim() == field)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The `sentry_key` of a query string such as `sentry_key=abc&sentry_version=7`.
pub fn key_from_query(query: &str) -> Option<&str> {
    query_field(query, "sentry_key")
}

/// One parameter of a query string, as sent (Sentry's keys and client names need no decoding).
pub fn query_field<'q>(query: &'q str, field: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == field)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The public key and project (app) id of a DSN `https://KEY@host/APP_ID`.
pub fn key_and_app_from_dsn(dsn: &str) -> Option<(&str, &str)> {
    let (_, rest) = dsn.split_once("://")?;
    let (userinfo, location) = rest.split_once('@')?;
    // `KEY:SECRET@` is the legacy form; only the public part identifies the key.
    let key = userinfo.split(':').next().filter(|key| !key.is_empty())?;
    let app_id = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|id| !id.is_empty() && !id.contains(':'))?;
    // A DSN without a path would yield the host as the "app id"; a real one always has a path.
    location.contains('/').then_some((key, app_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_header_yields_the_sentry_key_wherever_it_sits() {
        let header = "Sentry sentry_version=7, sentry_client=sentry.rust/0.49.0, sentry_key=abc123";
        assert_eq!(key_from_auth_header(header), Some("abc123"));
        assert_eq!(
            key_from_auth_header("Sentry sentry_key=k,sentry_version=7"),
            Some("k")
        );
    }

    #[test]
    fn auth_header_without_scheme_or_key_yields_nothing() {
        assert_eq!(key_from_auth_header("Bearer sentry_key=abc"), None);
        assert_eq!(key_from_auth_header("Sentry sentry_version=7"), None);
        assert_eq!(key_from_auth_header("Sentry sentry_key="), None);
    }

    #[test]
    fn query_yields_the_sentry_key() {
        assert_eq!(
            key_from_query("sentry_version=7&sentry_key=abc"),
            Some("abc")
        );
        assert_eq!(key_from_query("sentry_version=7"), None);
        assert_eq!(key_from_query("sentry_key="), None);
    }

    #[test]
    fn dsn_yields_key_and_app_id() {
        assert_eq!(
            key_and_app_from_dsn("https://abc@rollwatch.example/42"),
            Some(("abc", "42"))
        );
        assert_eq!(
            key_and_app_from_dsn("http://abc:secret@127.0.0.1:8080/prefix/42/"),
            Some(("abc", "42"))
        );
    }

    #[test]
    fn dsn_without_key_or_app_id_yields_nothing() {
        assert_eq!(key_and_app_from_dsn("https://rollwatch.example/42"), None);
        assert_eq!(
            key_and_app_from_dsn("https://abc@rollwatch.example:8080"),
            None
        );
        assert_eq!(key_and_app_from_dsn("not a dsn"), None);
    }
}
