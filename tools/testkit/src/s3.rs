//! moto's S3 server for integration tests: the endpoint `.ci/moto.sh start` exports
//! (`STRATA_TEST_S3_ENDPOINT`), a bucket per test, an `object_store` client of it, and the
//! environment a child process needs to reach it.

use std::io::{Read, Write};

/// The endpoint of the S3-compatible server the test script started, or `None` (after
/// printing that `what` is skipped) when there is none.
pub fn endpoint(what: &str) -> Option<String> {
    match std::env::var("STRATA_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            println!(
                "skipping {what} against S3: STRATA_TEST_S3_ENDPOINT is not set (make test starts moto: bash .ci/moto.sh start)"
            );
            None
        }
    }
}

/// Create a bucket on moto's S3 (a plain path-style PUT; moto needs no signature).
pub fn create_bucket(endpoint: &str, bucket: &str) {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket}: {resp}"
    );
}

/// The environment variables that point a child process's AWS clients at `endpoint`
/// with moto's dummy credentials.
pub fn env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
    ]
}

/// An `object_store` client of `bucket` on the S3-compatible server at `endpoint` (plain
/// http, moto's dummy credentials, uploads with SHA-256 checksums).
pub fn client(endpoint: &str, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
        .build()
        .unwrap()
}
