//! The answer of a BILLmanager function as a format-neutral element tree (the shared
//! [`crate::protocol`] tree, which BILLmanager builds internally before rendering
//! `out=xml|json|sjson`), and the upstream error (`doc/error`) the sandbox writes;
//! both live in the protocol module, which the downstream endpoint shares.

pub(crate) use crate::protocol::{ApiError, Doc, Node};
