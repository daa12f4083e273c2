//! The S3 flags every command that reads payloads shares.

use super::S3Options;

/// S3 settings beyond the default credential chain (environment, web identity, pod
/// identity, profiles, instance metadata).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct S3Args {
    /// Endpoint of an S3-compatible server (MinIO, ...) [default: AWS]
    #[arg(long, env = "HAKEEPER_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Address buckets by path (`endpoint/bucket/key`), as MinIO needs
    #[arg(long, env = "HAKEEPER_S3_PATH_STYLE")]
    pub s3_path_style: bool,
    /// Region [default: from the AWS configuration chain]
    #[arg(long, env = "HAKEEPER_S3_REGION")]
    pub s3_region: Option<String>,
    /// Static access key (with --s3-secret-key) instead of the credential chain
    #[arg(
        long,
        env = "HAKEEPER_S3_ACCESS_KEY",
        hide_env_values = true,
        requires = "s3_secret_key"
    )]
    pub s3_access_key: Option<String>,
    /// Static secret key; prefer the environment variable over the flag
    #[arg(
        long,
        env = "HAKEEPER_S3_SECRET_KEY",
        hide_env_values = true,
        requires = "s3_access_key"
    )]
    pub s3_secret_key: Option<String>,
}

impl S3Args {
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: self.s3_endpoint.clone(),
            path_style: self.s3_path_style,
            region: self.s3_region.clone(),
            access_key: self.s3_access_key.clone(),
            secret_key: self.s3_secret_key.clone(),
        }
    }
}
