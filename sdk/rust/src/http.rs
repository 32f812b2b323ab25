//! A minimal blocking HTTP/1.1 client: one POST per connection (`Connection: close`), enough
//! for the ingestion API. `https://` goes through rustls when the `tls` feature is on.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime};

/// An answer: status, `Retry-After` in seconds (delta-seconds or an HTTP date), and the body.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<f64>,
    pub body: Vec<u8>,
}

/// Why no answer came: the request may or may not have reached the server.
#[derive(Debug)]
pub enum Unreachable {
    /// Not `http://host[:port][/base]`, nor `https://…` with the `tls` feature.
    UnsupportedEndpoint,
    Io(std::io::Error),
    Malformed,
    /// The handshake failed or the server's certificate is not trusted.
    #[cfg(feature = "tls")]
    Tls(rustls::Error),
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreachable::UnsupportedEndpoint => f.write_str(SUPPORTED),
            Unreachable::Io(e) => write!(f, "{e}"),
            Unreachable::Malformed => f.write_str("malformed HTTP answer"),
            #[cfg(feature = "tls")]
            Unreachable::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

/// What `Endpoint::parse` takes, for logs.
#[cfg(feature = "tls")]
pub const SUPPORTED: &str = "endpoint is not an http:// or https:// URL";
#[cfg(not(feature = "tls"))]
pub const SUPPORTED: &str = "endpoint is not an http:// URL (https:// needs the `tls` feature)";

impl From<std::io::Error> for Unreachable {
    fn from(e: std::io::Error) -> Self {
        Unreachable::Io(e)
    }
}

/// `http[s]://host:port/base` split into the address, the host name and the path prefix.
pub struct Endpoint {
    address: String,
    authority: String,
    base: String,
    #[cfg(feature = "tls")]
    tls: Option<tls::Session>,
}

impl Endpoint {
    /// `extra_roots`: PEM certificates trusted for `https://` besides the Mozilla roots.
    pub fn parse(url: &str, extra_roots: &[Vec<u8>]) -> Option<Endpoint> {
        let url = url.trim();
        let (rest, secure) = match url.strip_prefix("http://") {
            Some(rest) => (rest, false),
            None => (url.strip_prefix("https://")?, true),
        };
        let (authority, base) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return None;
        }
        // `[::1]:8080` has colons of its own: a port follows the last `]`, if any.
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port))
                if !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && !host.ends_with(':')
                    && (host.starts_with('[') == host.ends_with(']')) =>
            {
                (host, Some(port))
            }
            _ => (authority, None),
        };
        let port = port.unwrap_or(if secure { "443" } else { "80" });
        #[cfg(feature = "tls")]
        let tls = match secure {
            true => Some(tls::Session::new(
                host.trim_start_matches('[').trim_end_matches(']'),
                extra_roots,
            )?),
            false => None,
        };
        #[cfg(not(feature = "tls"))]
        if secure {
            let _ = extra_roots;
            return None;
        }
        Some(Endpoint {
            address: format!("{host}:{port}"),
            authority: authority.to_owned(),
            base: base.to_owned(),
            #[cfg(feature = "tls")]
            tls,
        })
    }
}

pub fn post(
    endpoint: Option<&Endpoint>,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Answer, Unreachable> {
    let endpoint = endpoint.ok_or(Unreachable::UnsupportedEndpoint)?;
    let mut last = None;
    let mut stream = None;
    for addr in endpoint.address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(e.into()),
        (None, None) => return Err(Unreachable::Malformed),
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!(
        "POST {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        endpoint.base,
        endpoint.authority,
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    #[cfg(feature = "tls")]
    if let Some(session) = &endpoint.tls {
        let stream = session.connect(stream).map_err(Unreachable::Tls)?;
        return exchange(stream, head.as_bytes(), body);
    }
    exchange(stream, head.as_bytes(), body)
}

/// Writes the request and reads the whole answer. A TLS peer that closes without
/// `close_notify` is fine once the answer is complete.
fn exchange(
    mut stream: impl Read + Write,
    head: &[u8],
    body: &[u8],
) -> Result<Answer, Unreachable> {
    stream.write_all(head)?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    // An answer larger than this is not one of ours.
    match stream.take(4 * 1024 * 1024).read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    parse(&raw, SystemTime::now()).ok_or(Unreachable::Malformed)
}

/// The answer in `raw`, or `None` when it is not a whole HTTP answer.
fn parse(raw: &[u8], now: SystemTime) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut retry_after = None;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("retry-after") {
            retry_after = retry_after_seconds(value, now);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().ok()?);
        }
    }
    let body = match (chunked, length) {
        (true, _) => dechunk(body)?,
        (false, Some(length)) => body.get(..length)?.to_vec(),
        (false, None) => body.to_vec(),
    };
    Some(Answer {
        status,
        retry_after,
        body,
    })
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past is 0.
fn retry_after_seconds(value: &str, now: SystemTime) -> Option<f64> {
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then_some(seconds);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .map_or(0.0, |wait| wait.as_secs_f64()),
    )
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(feature = "tls")]
mod tls {
    use std::net::TcpStream;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

    /// What every connection to one `https://` endpoint shares: the verified name and roots.
    pub struct Session {
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    }

    impl Session {
        pub fn new(host: &str, extra_roots: &[Vec<u8>]) -> Option<Session> {
            let name = ServerName::try_from(host.to_owned()).ok()?;
            let mut roots =
                RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for pem in extra_roots {
                let mut added = 0;
                for cert in CertificateDer::pem_slice_iter(pem) {
                    match cert
                        .map_err(|e| e.to_string())
                        .and_then(|cert| roots.add(cert).map_err(|e| e.to_string()))
                    {
                        Ok(()) => added += 1,
                        Err(e) => log::warn!("rollwatch: a root certificate is ignored: {e}"),
                    }
                }
                if added == 0 {
                    log::warn!("rollwatch: a root_certificates entry holds no PEM certificate");
                }
            }
            let config = ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(Session {
                config: Arc::new(config),
                name,
            })
        }

        pub fn connect(
            &self,
            tcp: TcpStream,
        ) -> Result<StreamOwned<ClientConnection, TcpStream>, rustls::Error> {
            let connection = ClientConnection::new(Arc::clone(&self.config), self.name.clone())?;
            Ok(StreamOwned::new(connection, tcp))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(raw: &str, now: SystemTime) -> Answer {
        parse(raw.as_bytes(), now).expect("a whole answer")
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let now = httpdate::parse_http_date("Wed, 02 Dec 2026 22:00:00 GMT").expect("date");
        let head = |value: &str| {
            format!(
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {value}\r\nContent-Length: 0\r\n\r\n"
            )
        };
        assert_eq!(answer(&head("7"), now).retry_after, Some(7.0));
        assert_eq!(
            answer(&head("Wed, 02 Dec 2026 22:00:30 GMT"), now).retry_after,
            Some(30.0)
        );
        assert_eq!(
            answer(&head("Wed, 02 Dec 2026 21:59:00 GMT"), now).retry_after,
            Some(0.0)
        );
        assert_eq!(answer(&head("soon"), now).retry_after, None);
        assert_eq!(answer(&head("-3"), now).retry_after, None);
    }

    #[test]
    fn an_answer_cut_short_of_its_length_is_not_an_answer() {
        let now = SystemTime::now();
        let whole = "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(answer(whole, now).body, b"{}");
        assert!(parse(b"HTTP/1.1 202 Accepted\r\nContent-Length: 9\r\n\r\n{}", now).is_none());
    }

    #[test]
    fn endpoints_take_their_scheme_default_port_and_base() {
        let plain = Endpoint::parse("http://example.com/rw/", &[]).expect("http");
        assert_eq!(plain.address, "example.com:80");
        assert_eq!(plain.base, "/rw");
        let v6 = Endpoint::parse("http://[::1]:8080", &[]).expect("v6");
        assert_eq!(v6.address, "[::1]:8080");
        let bare_v6 = Endpoint::parse("http://[::1]", &[]).expect("bare v6");
        assert_eq!(bare_v6.address, "[::1]:80");
        assert!(Endpoint::parse("ftp://example.com", &[]).is_none());
        assert!(Endpoint::parse("http://", &[]).is_none());
        let secure = Endpoint::parse("https://example.com", &[]);
        assert_eq!(cfg!(feature = "tls"), secure.is_some());
        if let Some(secure) = secure {
            assert_eq!(secure.address, "example.com:443");
        }
    }
}
