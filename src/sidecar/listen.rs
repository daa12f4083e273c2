//! Where the local API listens, and who may call it: loopback TCP by default, a Unix socket
//! (`unix:/path`, created 0600) for a shared `emptyDir`, and an optional bearer token that
//! every `/v1` call must present. A non-loopback TCP address needs a token.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ErrorKind};

/// `--listen`: `HOST:PORT` or `unix:/path/to/socket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{s:?}: a Unix socket path must be absolute (unix:/path)"
                ));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(Listen::Tcp)
            .map_err(|_| format!("{s:?}: expected HOST:PORT (e.g. 127.0.0.1:7070) or unix:/path"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "http://{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Refuse to serve the API off loopback without a token.
pub fn check_exposure(listen: &Listen, has_token: bool) -> Result<(), String> {
    match listen {
        Listen::Tcp(a) if !a.ip().is_loopback() && !has_token => Err(format!(
            "refusing to serve the local API on {a} without a token: anyone who can reach it \
             could write HA state; listen on 127.0.0.1 or a unix: socket, or set --token-file"
        )),
        _ => Ok(()),
    }
}

/// The token read from `--token-file`: its first line, trimmed; it must not be empty.
pub fn parse_token(contents: &str) -> Result<String, String> {
    let token = contents.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err("the token file is empty".into());
    }
    Ok(token.to_string())
}

/// Equal in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: `/v1` calls need `Authorization: Bearer <token>`; probes and metrics do not.
pub async fn require_token(token: Arc<str>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/v1") {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if same(p.as_bytes(), token.as_bytes()) => next.run(request).await,
        _ => {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorKind::Unauthorized,
                "this sidecar requires Authorization: Bearer <token> on /v1 calls",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            "127.0.0.1:7070".parse(),
            Ok(Listen::Tcp("127.0.0.1:7070".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:0".parse(),
            Ok(Listen::Tcp("[::1]:0".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/hk/api.sock".parse(),
            Ok(Listen::Unix("/run/hk/api.sock".into()))
        );
        assert!(
            "unix:relative.sock"
                .parse::<Listen>()
                .unwrap_err()
                .contains("absolute")
        );
        assert!("localhost:7070".parse::<Listen>().is_err());
        assert_eq!(Listen::Unix("/s".into()).to_string(), "unix:/s");
    }

    #[test]
    fn exposure_needs_a_token_off_loopback() {
        let lo: Listen = "127.0.0.1:7070".parse().unwrap();
        let lo6: Listen = "[::1]:7070".parse().unwrap();
        let any: Listen = "0.0.0.0:7070".parse().unwrap();
        let sock: Listen = "unix:/s".parse().unwrap();
        assert!(check_exposure(&lo, false).is_ok());
        assert!(check_exposure(&lo6, false).is_ok());
        assert!(check_exposure(&sock, false).is_ok());
        assert!(
            check_exposure(&any, false)
                .unwrap_err()
                .contains("--token-file")
        );
        assert!(check_exposure(&any, true).is_ok());
    }

    #[test]
    fn tokens() {
        assert_eq!(parse_token("s3cr3t\n"), Ok("s3cr3t".into()));
        assert_eq!(parse_token("  s3cr3t  \nsecond line"), Ok("s3cr3t".into()));
        assert!(parse_token("\n").is_err());
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
