//! `strata._strata`: the native half of the `strata` Python package. It links the engine
//! in-process and offers a small, typed surface — one `Store` per opened store
//! (the writer or a reader), reads and writes in Chroma's terms, the maintenance calls,
//! and the producer functions that seal a delta without the writer. The Python half
//! (`pysrc/strata/`) builds Chroma's client API on it.
//!
//! Every call that touches the store releases the GIL (`Python::allow_threads`); numpy
//! inputs are borrowed, not converted; untrusted arguments become `ValueError`,
//! `TypeError` or one of `strata.errors`' exceptions, never a panic.

use pyo3::prelude::*;

mod convert;
mod docfilter;
mod error;
mod producer;
mod reads;
mod store;
mod writes;

/// The extension module.
#[pymodule]
fn _strata(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::Store>()?;
    m.add_function(wrap_pyfunction!(producer::encode_delta, m)?)?;
    m.add_function(wrap_pyfunction!(producer::publish_inbox, m)?)?;
    m.add_function(wrap_pyfunction!(store::verify, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
