//! `hakeeper decode`: a store entry's value as JSON.

use clap::Args;

use crate::Result;

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The value, or `-` (the default) to read it from standard input
    #[arg(default_value = "-")]
    pub value: String,
}

/// Decode the value (base64 of a Java-serialized Flink state handle) and print it as JSON.
pub fn run(args: DecodeArgs) -> Result<()> {
    let value = if args.value == "-" {
        use std::io::Read;
        let mut buf = String::new();
        std::io::stdin()
            .take(crate::handle::MAX_ENCODED_LEN as u64 * 2)
            .read_to_string(&mut buf)
            .map_err(|e| super::context("reading standard input", e))?;
        buf
    } else {
        args.value
    };
    let handle = crate::handle::decode_base64(&value).map_err(super::other)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&handle).map_err(super::other)?
    );
    Ok(())
}
