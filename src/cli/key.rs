//! `refine key generate|show`

use super::printer::Printer;
use crate::error::{Exit, Result};
use crate::ops::GlobalOpts;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Make this machine's signing key (ed25519) and print its public half
    /// as one line, for other machines' `trusted_keys`.
    Generate {
        /// The key's name, shown with every result it signs.
        #[arg(long, default_value = "refine")]
        name: String,
        /// Where to write it (default: --signing-key, or <store>/keys/signing.key).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the public half of the signing key.
    Show {
        /// The key file (default: --signing-key, or <store>/keys/signing.key).
        file: Option<PathBuf>,
    },
}

pub fn run(c: &KeyCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let (path, line) = match c {
        KeyCmd::Generate { name, out } => crate::ops::key::generate(opts, name, out.clone())?,
        KeyCmd::Show { file } => crate::ops::key::show(opts, file.clone())?,
    };
    p.data(&line);
    if matches!(c, KeyCmd::Generate { .. }) {
        p.info(&format!(
            "key: wrote {} (keep it secret); trust its results elsewhere with `trusted_keys = [\"{line}\"]` in [store]",
            path.display()
        ));
    }
    Ok(Exit::Success)
}
