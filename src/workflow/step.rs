//! What differs between the kinds of paid step, and only that: the request, how to
//! recognise it carried out upstream, and what "done" means. Everything else (the
//! INTENT before the call, the classification of the answer, the settle period and
//! the re-send limit, the anomaly counts, the hand-over to a person) is the attempt
//! engine's, written once for every kind.
//!
//! An operator's RETRY of a stuck step is no kind of its own: it stores a fresh
//! operation of the stuck kind at INTENT, which the engine recovers like any unknown
//! outcome (look it up first, re-send only on proof of absence).

use crate::billmanager::UpstreamError;
use crate::domain::{License, Operation, UpstreamFailure};
use crate::store::StoreError;

use super::Worker;
use super::lease::HeldLease;

/// What a look-up for a step found upstream.
pub(crate) enum Found<P> {
    /// The step is carried out; `P` is what shows it (the order's upstream id, the
    /// license's details).
    Done(P),
    /// Not carried out, and what was read proves it.
    Absent,
    /// Not seen, on a view that could hide it (`why`, said to a person): not found,
    /// not proven absent, so never re-sent.
    Unseen(String),
    /// Several upstream items could be it: only a person can tell.
    Ambiguous(String),
    /// What was read proves nothing either way: a failed look-up (`error`, and `why`
    /// for the person it goes to once the failures run out).
    Unproven(UpstreamError, String),
}

/// One kind of paid step.
pub(crate) trait Step {
    /// What a successful call answered.
    type Answer;
    /// What a look-up that found the step carried out shows.
    type Proof;
    /// The `kind` of the anomaly counted when the answer to the call cannot be read.
    const UNREADABLE: &'static str;

    /// How messages name the step: "the order", "RENEW".
    fn name(&self, op: &Operation) -> String;

    /// How a look-up that finds nothing puts it: "listed", "visible".
    fn unseen_as(&self) -> &'static str;

    /// Readies `op` to be sent from `license` as it is now (what recovery compares
    /// against is taken here), or says why it can never be sent.
    fn ready(&self, op: &mut Operation, license: &License) -> Result<(), UpstreamFailure>;

    /// The upstream call.
    async fn call(
        &self,
        w: &Worker,
        op: &Operation,
        license: &License,
    ) -> Result<Self::Answer, UpstreamError>;

    /// The upstream carried the call out and said so.
    async fn accepted(
        &self,
        w: &Worker,
        op: Operation,
        license: License,
        answer: Self::Answer,
        held: &HeldLease,
    ) -> Result<(), StoreError>;

    /// The upstream refused the call.
    async fn refused(
        &self,
        w: &Worker,
        op: Operation,
        license: License,
        refusal: UpstreamError,
        held: &HeldLease,
    ) -> Result<(), StoreError>;

    /// Records on `op` and `license` that the upstream took the call but its answer
    /// could not be read, so that [`placed`](Self::placed) holds from the next save.
    fn mark_placed(&self, op: &mut Operation, license: &mut License);

    /// Whether the upstream took the call (an answer without an error that could not
    /// be read, or a refusal whose look-up could not settle it): it is looked for,
    /// never sent again.
    fn placed(&self, op: &Operation, license: &License) -> bool;

    /// Looks for the step upstream.
    async fn look_up(
        &self,
        w: &Worker,
        op: &Operation,
        license: &License,
    ) -> Result<Found<Self::Proof>, UpstreamError>;

    /// A look-up found the step carried out.
    async fn found(
        &self,
        w: &Worker,
        op: Operation,
        license: License,
        proof: Self::Proof,
        held: &HeldLease,
    ) -> Result<(), StoreError>;

    /// Carried out and confirmed: reads what it produced until it is done.
    async fn finish(&self, w: &Worker, op: Operation, license: License) -> Result<(), StoreError>;
}
