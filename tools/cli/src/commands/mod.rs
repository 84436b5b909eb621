//! The commands, one module per group, and what they share: the store to open (as writer
//! or reader) and the output mode. [`execute`] dispatches a parsed command line.

pub mod collections;
pub mod events;
pub mod files;
pub mod import;
pub mod maintenance;
pub mod read;
pub mod s3;
pub mod versions;
pub mod write;

use std::path::PathBuf;

use strata_engine::{Include, Reader, RemoteOptions, StoreOptions, Writer};

use crate::cli::{Cli, Command, IncludeField};
use crate::error::{CliError, CliResult};

/// What every command gets: the store directory and whether to print JSON.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The store directory, or a published store's URL (`--store`).
    pub store: PathBuf,
    /// The cache directory for a published store (`--cache`).
    pub cache: Option<PathBuf>,
    /// Print JSON instead of tables (`--json`).
    pub json: bool,
}

impl Ctx {
    /// The published store's URL when `--store` names one (`s3://`, `file://`).
    pub fn remote_url(&self) -> Option<&str> {
        let s = self.store.to_str()?;
        (s.starts_with("s3://") || s.starts_with("file://")).then_some(s)
    }

    /// Fail unless the store directory holds a strata store (so that a command other than
    /// `create` never creates one as a side effect).
    pub fn require_store(&self) -> CliResult<()> {
        if let Some(url) = self.remote_url() {
            return Err(CliError::usage(format!(
                "{url} is a published store, which is read-only: this command needs a local \
                 store directory (publish from it with `strata --store DIR publish {url}`)"
            )));
        }
        if self.store.join("versions").is_dir() {
            Ok(())
        } else {
            Err(CliError::failed(format!(
                "{} is not a strata store (no versions/ directory); create a collection first: \
                 strata --store {} create NAME --dims N",
                self.store.display(),
                self.store.display()
            )))
        }
    }

    /// Open the store as writer, creating it if needed (only `create` should want that).
    /// Fails at once, naming the holder, if another process is the writer.
    pub fn writer(&self, command: &str) -> CliResult<Writer> {
        if self.remote_url().is_some() {
            self.require_store()?;
        }
        let defaults = StoreOptions::default();
        let options = StoreOptions {
            holder: format!("strata {command} ({})", defaults.holder),
            ..defaults
        };
        Ok(Writer::open(&self.store, options)?)
    }

    /// Open an existing store as writer.
    pub fn existing_writer(&self, command: &str) -> CliResult<Writer> {
        self.require_store()?;
        self.writer(command)
    }

    /// Open an existing store read-only (works while another process is the writer).
    pub fn reader(&self) -> CliResult<Reader> {
        if let Some(url) = self.remote_url() {
            return Ok(Reader::open_remote(
                url,
                self.cache.as_deref(),
                RemoteOptions::default(),
            )?);
        }
        self.require_store()?;
        Ok(Reader::open(&self.store)?)
    }
}

/// The engine's `Include` for the `--include` fields (documents and metadata when empty).
pub fn include_of(fields: &[IncludeField]) -> Include {
    if fields.is_empty() {
        return Include::default();
    }
    let mut inc = Include::ids();
    for f in fields {
        match f {
            IncludeField::Ids => {}
            IncludeField::Documents => inc.documents = true,
            IncludeField::Metadatas => inc.metadatas = true,
            IncludeField::Embeddings => inc.embeddings = true,
        }
    }
    inc
}

// Long: one arm per command; the dispatch reads best as one match.
/// Run a parsed command line; returns the exit status of a command that ran (a failed
/// check, such as `verify` finding corruption, is status 1 without an error).
pub fn execute(cli: Cli) -> CliResult<i32> {
    let ctx = Ctx {
        store: cli.store,
        cache: cli.cache,
        json: cli.json,
    };
    match cli.command {
        Command::Create {
            name,
            dims,
            metric,
            quantize,
        } => collections::create(&ctx, &name, dims, metric, quantize),
        Command::Collections => collections::list(&ctx),
        Command::Drop { name } => collections::drop(&ctx, &name),
        Command::Put {
            name,
            file,
            npy,
            ids,
            metadata,
            documents,
        } => write::put(
            &ctx,
            &name,
            write::PutSource::from_args(file, npy, ids, metadata, documents)?,
        ),
        Command::Update { name, file } => write::update(&ctx, &name, &file),
        Command::Delete { name, select } => {
            write::delete(&ctx, &name, &select.ids, select.filter.as_deref())
        }
        Command::Compact { name } => maintenance::compact(&ctx, name.as_deref()),
        Command::Versions { name } => versions::list(&ctx, &name),
        Command::Rollback { name, to } => versions::rollback(&ctx, &name, to),
        Command::Pin { name, version } => versions::pin(&ctx, &name, version, true),
        Command::Unpin { name, version } => versions::pin(&ctx, &name, version, false),
        Command::Gc { older_than } => maintenance::gc(&ctx, older_than),
        Command::Publish {
            url,
            unsafe_unconditional,
        } => maintenance::publish(&ctx, &url, unsafe_unconditional),
        Command::GcRemote { url, grace } => maintenance::gc_remote(&ctx, &url, grace),
        Command::Stats { name } => maintenance::stats(&ctx, name.as_deref()),
        Command::Get {
            name,
            select,
            limit,
            offset,
            include,
        } => read::get(
            &ctx,
            &name,
            &select.ids,
            select.filter.as_deref(),
            limit,
            offset,
            include_of(&include),
        ),
        Command::Count { name, filter } => read::count(&ctx, &name, filter.as_deref()),
        Command::Query {
            name,
            vector,
            npy,
            k,
            filter,
            include,
            exact,
            oversample,
        } => read::query(
            &ctx,
            &read::QueryArgs {
                name,
                vector,
                npy,
                k: k as usize,
                filter,
                include: include_of(&include),
                exact,
                oversample: oversample.map(|o| o as usize),
            },
        ),
        Command::IngestEvents { files, runs } => events::ingest(&ctx, &files, runs),
        Command::LambdaInvoke {
            role,
            event,
            runs,
            request_id,
            runs_table,
            publish,
        } => events::invoke(
            &ctx,
            role,
            &event,
            events::InvokeOptions {
                runs,
                request_id,
                runs_table,
                publish,
            },
        ),
        Command::ImportChroma {
            source,
            collection,
            as_name,
        } => import::import_chroma(
            &ctx,
            &import::ImportArgs {
                source,
                collection,
                as_name,
            },
        ),
        Command::Inspect { file } => files::inspect(&ctx, &file),
        Command::Verify { dir } => files::verify(&ctx, dir),
        Command::Demo { receipts, seed } => {
            crate::demo::run(&ctx.store, receipts, seed).map_err(CliError::Failed)?;
            Ok(0)
        }
    }
}
