//! Credentials and region from a named AWS profile (`~/.aws/credentials`, `~/.aws/config`,
//! `AWS_PROFILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`), the one source of the
//! usual AWS chain that `object_store` does not read itself. `aws-config` reads the files
//! (static keys, session tokens, `credential_process`); this adapts its provider to
//! `object_store`'s [`CredentialProvider`], caching what it returns until shortly before
//! it expires. Profiles that assume a role or use SSO need an HTTP client this build does
//! not carry: they fail with aws-config's error, named in the request that needed them.
//!
//! It is used only where the environment names no credentials of its own (keys, web
//! identity, container credentials): those are `object_store`'s and win, as in the AWS
//! SDKs' chain.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::meta::region::ProvideRegion;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_credential_types::provider::ProvideCredentials;
use object_store::aws::AwsCredential;
use object_store::CredentialProvider;

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Environment variables through which `object_store` finds credentials itself.
const NATIVE_SOURCES: [&str; 5] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// Whether credentials should come from a profile: the environment names none of
/// `object_store`'s own sources, and a profile is chosen (`AWS_PROFILE`) or a shared
/// credentials file exists. A config file alone (often just a region, on an instance whose
/// role `object_store` reads from its metadata service) does not count.
pub(crate) fn wanted() -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if NATIVE_SOURCES.iter().any(|k| set(k)) {
        return false;
    }
    if set("AWS_PROFILE") {
        return true;
    }
    match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => home().join(".aws").join("credentials"),
    }
    .is_file()
}

fn home() -> std::path::PathBuf {
    std::env::var_os("HOME").map_or_else(|| "/".into(), Into::into)
}

/// The profile's region, if the environment sets none (`AWS_REGION`,
/// `AWS_DEFAULT_REGION`) and the profile has one.
pub(crate) fn region(runtime: &tokio::runtime::Runtime) -> Option<String> {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("AWS_REGION") || set("AWS_DEFAULT_REGION") {
        return None;
    }
    let provider = ProfileFileRegionProvider::builder().build();
    block_on(runtime, async move { provider.region().await }).map(|r| r.to_string())
}

/// Run `f` to completion on `runtime`, from inside another runtime too (on a scoped thread).
fn block_on<F: std::future::Future + Send>(runtime: &tokio::runtime::Runtime, f: F) -> F::Output
where
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime.block_on(f);
    }
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(f))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A profile's credentials as an `object_store` credential provider.
#[derive(Debug)]
pub(crate) struct ProfileCredentials {
    provider: ProfileFileCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl ProfileCredentials {
    /// The provider of the profile `AWS_PROFILE` names (`default` without it).
    pub(crate) fn new() -> ProfileCredentials {
        ProfileCredentials {
            provider: ProfileFileCredentialsProvider::builder().build(),
            cached: Mutex::new(None),
        }
    }

    fn fresh(&self) -> Option<Arc<AwsCredential>> {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let (credential, expiry) = cached.as_ref()?;
        let valid = expiry.is_none_or(|t| {
            t.duration_since(SystemTime::now())
                .is_ok_and(|left| left > REFRESH_BEFORE_EXPIRY)
        });
        valid.then(|| credential.clone())
    }
}

#[async_trait::async_trait]
impl CredentialProvider for ProfileCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let c = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: format!("AWS profile credentials: {}", error_chain(&e)).into(),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        });
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((credential.clone(), c.expiry()));
        Ok(credential)
    }
}

/// An error and its sources, as one line (aws-config's top level says little alone).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process environment is global: the tests that change it run one at a time.
    static ENV: Mutex<()> = Mutex::new(());

    /// A profile file written to a temporary directory and named through the environment.
    fn with_profile<T>(credentials: &str, config: &str, f: impl FnOnce() -> T) -> T {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("credentials"), dir.path().join("config"));
        std::fs::write(&c, credentials).unwrap();
        std::fs::write(&k, config).unwrap();
        let saved: Vec<(&str, Option<std::ffi::OsString>)> = [
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_CONFIG_FILE",
            "AWS_PROFILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        ]
        .into_iter()
        .chain(NATIVE_SOURCES)
        .map(|k| (k, std::env::var_os(k)))
        .collect();
        // The tests that touch the environment hold `ENV`; no other test of this crate
        // reads these variables.
        for (k, _) in &saved {
            std::env::remove_var(k);
        }
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &c);
        std::env::set_var("AWS_CONFIG_FILE", &k);
        std::env::set_var("AWS_PROFILE", "strata-test");
        let out = f();
        for (k, v) in saved {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
        out
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_named_profile_gives_its_keys_and_region() {
        let credentials = "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\
                           [strata-test]\naws_access_key_id = AKIASTRATA\n\
                           aws_secret_access_key = s3cr3t\naws_session_token = tok\n";
        let config = "[profile strata-test]\nregion = eu-west-3\n";
        let (wanted, region, credential) = with_profile(credentials, config, || {
            let rt = runtime();
            let provider = ProfileCredentials::new();
            let c = rt.block_on(provider.get_credential()).unwrap();
            let again = rt.block_on(provider.get_credential()).unwrap();
            assert!(Arc::ptr_eq(&c, &again), "cached until it expires");
            (wanted(), region(&rt), c)
        });
        assert!(wanted);
        assert_eq!(region.as_deref(), Some("eu-west-3"));
        assert_eq!(credential.key_id, "AKIASTRATA");
        assert_eq!(credential.secret_key, "s3cr3t");
        assert_eq!(credential.token.as_deref(), Some("tok"));
    }

    #[test]
    fn keys_in_the_environment_win_and_a_missing_profile_says_so() {
        let credentials = "[other]\naws_access_key_id = A\naws_secret_access_key = B\n";
        let (with_keys, err) = with_profile(credentials, "", || {
            std::env::set_var("AWS_ACCESS_KEY_ID", "AKIAENV");
            let with_keys = wanted();
            std::env::remove_var("AWS_ACCESS_KEY_ID");
            let err = runtime()
                .block_on(ProfileCredentials::new().get_credential())
                .unwrap_err();
            // No profile chosen and no credentials file (a config file alone, as on an
            // instance with a role): object_store's own chain, not the profile.
            std::env::remove_var("AWS_PROFILE");
            std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials");
            assert!(!wanted(), "a config file alone does not choose the profile");
            (with_keys, err.to_string())
        });
        assert!(
            !with_keys,
            "object_store reads keys from the environment itself"
        );
        assert!(err.contains("AWS profile credentials"), "{err}");
        assert!(err.contains("strata-test"), "names the profile: {err}");
    }
}
