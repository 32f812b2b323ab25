//! The DSN a stock Sentry SDK takes to report to Rollwatch (DESIGN §5.1):
//! `http(s)://<rpk_ key>@<host>[/<path>]/<app id>`, built on the server's public base URL.

use std::net::SocketAddr;

use reqwest::Url;

/// Checks a public base URL (`PUBLIC_URL`, `--public-url`): http or https, a host, and no
/// user, query or fragment, since the DSN puts the key where the user would go.
pub fn parse_public_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be http:// or https://, not {}://",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not name a user".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query and no fragment".to_owned());
    }
    Ok(url)
}

/// The public base URL: the one given, or else `http://BIND_ADDR` when that is an address
/// clients can reach (not 0.0.0.0, ::, or port 0).
pub fn public_base(given: Option<&Url>, bind_addr: SocketAddr) -> Result<Url, String> {
    if let Some(url) = given {
        return Ok(url.clone());
    }
    if bind_addr.ip().is_unspecified() || bind_addr.port() == 0 {
        return Err(format!(
            "the server listens on {bind_addr}, which is not an address an SDK can send to: \
             set PUBLIC_URL (or pass --public-url) to the URL clients reach Rollwatch at"
        ));
    }
    parse_public_url(&format!("http://{bind_addr}"))
}

/// `base` with the key as its user and the app id as its last path segment.
pub fn dsn(base: &Url, key: &str, app_id: i64) -> Result<String, String> {
    let mut dsn = base.clone();
    dsn.set_username(key)
        .map_err(|()| format!("{base} cannot carry a key"))?;
    let path = format!("{}/{app_id}", base.path().trim_end_matches('/'));
    dsn.set_path(&path);
    Ok(dsn.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "rpk_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn the_dsn_puts_the_key_before_the_host_and_the_app_id_last() {
        let dsn_of = |base: &str| dsn(&parse_public_url(base).unwrap(), KEY, 42).unwrap();
        assert_eq!(
            dsn_of("https://rollwatch.example.com"),
            format!("https://{KEY}@rollwatch.example.com/42")
        );
        assert_eq!(
            dsn_of("http://127.0.0.1:8080/"),
            format!("http://{KEY}@127.0.0.1:8080/42")
        );
        // Behind a proxy at a path: Sentry SDKs post to <path>/api/<id>/envelope/.
        assert_eq!(
            dsn_of("https://ops.example.com/rollwatch/"),
            format!("https://{KEY}@ops.example.com/rollwatch/42")
        );
        assert_eq!(
            dsn_of("http://[::1]:9000"),
            format!("http://{KEY}@[::1]:9000/42")
        );
    }

    #[test]
    fn a_public_url_an_sdk_cannot_use_is_refused() {
        for bad in [
            "ftp://example.com",
            "not a url",
            "https://user@example.com",
            "https://example.com/?a=1",
            "https://example.com/#x",
            "mailto:ops@example.com",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_a_public_url_the_bind_address_serves_only_when_reachable() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            public_base(None, local).unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
        for unreachable in ["0.0.0.0:8080", "[::]:8080", "127.0.0.1:0"] {
            let err = public_base(None, unreachable.parse().unwrap()).unwrap_err();
            assert!(err.contains("PUBLIC_URL"), "{err}");
        }
        let given = parse_public_url("https://rw.example.com").unwrap();
        assert_eq!(
            public_base(Some(&given), "0.0.0.0:80".parse().unwrap()).unwrap(),
            given
        );
    }
}
