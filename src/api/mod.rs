//! The API schema shared by both transports: the generated `licensefacade.v1`
//! messages (gRPC bodies, and through their proto3 JSON mapping the REST bodies) and
//! their conversions to and from the service layer's values.

mod audit;
mod convert;
mod costs;
pub mod pb;
mod pool;
mod timestamp;
mod webhooks;

pub use audit::{audit_entry_to_pb, call_price_to_pb};
pub use convert::drift_report_to_pb;
pub use convert::{
    ensure_action_to_pb, ensure_input, event_json, event_to_pb, feed_item_to_pb, license_to_pb,
    list_input, order_input, panel_to_pb, quote_to_pb, resolve_action_from_pb, resolve_input,
    state_from_pb,
};
pub use costs::cost_report_to_pb;
pub use pool::{pool_to_pb, release_outcome_to_pb, release_to_pb};
pub use timestamp::{Timestamp, TimestampError};
pub use webhooks::{webhook_input, webhook_to_pb};
