//! A downstream account's labels of its items, and a parked license taken back out of
//! the pool by its client, on every backend: labels are per account and set one at a
//! time; an unpark holds the license's server and its new IP from its acceptance, and
//! is refused while the server has another live license.

use std::sync::Arc;
use std::time::Duration;

use super::{T0, claim_op_of, client, create, end, far_future, pending};
use super::{on_postgres, on_sqlite_file, on_sqlite_memory};
use crate::domain::{
    EventKind, ItemLabels, License, LicenseIp, LicenseState, Operation, OperationKind, Phase,
};
use crate::store::{Inserted, Store, StoreError};

store_tests!(
    labels_are_each_accounts_own_and_a_label_not_sent_is_kept,
    an_unpark_holds_the_server_and_the_new_ip_from_its_acceptance,
    an_unpark_is_refused_while_its_server_has_another_live_license,
    an_unpark_and_an_order_for_its_server_racing_accept_exactly_one,
);

fn labels(licname: Option<&str>, remoteid: Option<&str>) -> ItemLabels {
    ItemLabels {
        licname: licname.map(str::to_owned),
        remoteid: remoteid.map(str::to_owned),
    }
}

async fn labels_are_each_accounts_own_and_a_label_not_sent_is_kept(store: Arc<dyn Store>) {
    let store = &*store;
    let license = pending("alice", "srv-1", T0);
    create(store, &license, T0).await;
    let (alice, bob) = (client("alice"), client("bob"));

    store
        .set_item_labels(&alice, license.id, &labels(Some("web1"), None), T0)
        .await
        .unwrap();
    store
        .set_item_labels(&alice, license.id, &labels(None, Some("l7")), T0)
        .await
        .unwrap();
    store
        .set_item_labels(&bob, license.id, &labels(Some("bobs"), Some("")), T0)
        .await
        .unwrap();

    let read = |who| {
        let ids = [license.id];
        async move { store.item_labels(who, &ids).await.unwrap() }
    };
    assert_eq!(
        read(&alice).await,
        vec![(license.id, labels(Some("web1"), Some("l7")))]
    );
    assert_eq!(
        read(&bob).await,
        vec![(license.id, labels(Some("bobs"), Some("")))]
    );
    assert_eq!(read(&client("carol")).await, vec![]);
    assert_eq!(store.item_labels(&alice, &[]).await.unwrap(), vec![]);
}

/// A PARKED license of `client`'s `server`, ordered upstream as `upstream_id`.
async fn parked(store: &dyn Store, client: &str, server: &str, upstream_id: u64) -> License {
    let license = pending(client, server, T0);
    create(store, &license, T0).await;
    let active = end(store, &license, LicenseState::Active).await;
    let park = Operation::received(active.id, OperationKind::Park, T0);
    store
        .insert_operations(active.id, &[park], None, &[], None)
        .await
        .expect("the park is queued");
    let mut op = claim_op_of(store, "parker", active.id, far_future()).await;
    op.phase = Phase::Done;
    let parked = License {
        state: LicenseState::Parked,
        upstream_id: Some(upstream_id),
        update_time: active.update_time + Duration::from_secs(1),
        ..active
    };
    store
        .save_progress(
            "parker",
            &op,
            &parked,
            &[EventKind::StateChanged],
            true,
            None,
        )
        .await
        .expect("the park is saved");
    parked
}

fn unpark(license: &License, to: &str) -> Operation {
    let kind = OperationKind::Unpark {
        ip: to.to_owned(),
        previous_ip: license.ip.to_string(),
    };
    Operation::received(license.id, kind, T0)
}

async fn an_unpark_holds_the_server_and_the_new_ip_from_its_acceptance(store: Arc<dyn Store>) {
    let store = &*store;
    let license = parked(store, "alice", "srv-1", 7_001).await;

    store
        .insert_operations(
            license.id,
            &[unpark(&license, "192.0.2.50")],
            None,
            &[],
            None,
        )
        .await
        .expect("the unpark is accepted");

    let taken = store.get_license(license.id).await.unwrap().unwrap();
    assert_eq!(taken.state, LicenseState::Suspended);
    assert_eq!(taken.ip, LicenseIp::parse("192.0.2.50", "ip").unwrap());
    let same_server = pending("alice", "srv-1", T0);
    let order = store
        .insert_order(
            &same_server,
            &super::order_op(&same_server, T0),
            None,
            &[],
            None,
        )
        .await
        .unwrap();
    assert!(
        matches!(&order, Inserted::Existing(l) if l.id == license.id),
        "{order:?}"
    );
    let same_ip = License {
        ip: LicenseIp::parse("192.0.2.50", "ip").unwrap(),
        ..pending("bob", "srv-9", T0)
    };
    let order = store
        .insert_order(&same_ip, &super::order_op(&same_ip, T0), None, &[], None)
        .await
        .unwrap();
    assert!(
        matches!(&order, Inserted::IpTaken(t) if t.holder.id == license.id),
        "{order:?}"
    );
}

async fn an_unpark_is_refused_while_its_server_has_another_live_license(store: Arc<dyn Store>) {
    let store = &*store;
    let license = parked(store, "alice", "srv-1", 7_001).await;
    let successor = pending("alice", "srv-1", T0 + Duration::from_secs(5));
    create(store, &successor, T0).await;

    let refused = store
        .insert_operations(
            license.id,
            &[unpark(&license, "192.0.2.51")],
            None,
            &[],
            None,
        )
        .await;

    assert!(
        matches!(&refused, Err(StoreError::ServerTaken(holder)) if holder.id == successor.id),
        "{refused:?}"
    );
    let kept = store.get_license(license.id).await.unwrap().unwrap();
    assert_eq!((kept.state, kept.ip), (LicenseState::Parked, license.ip));
    assert!(!store.has_open_operation(license.id).await.unwrap());
    let free = License {
        ip: LicenseIp::parse("192.0.2.51", "ip").unwrap(),
        ..pending("bob", "srv-2", T0)
    };
    let order = store
        .insert_order(&free, &super::order_op(&free, T0), None, &[], None)
        .await
        .unwrap();
    assert!(
        matches!(order, Inserted::Created(_)),
        "the IP was not held: {order:?}"
    );
}

async fn an_unpark_and_an_order_for_its_server_racing_accept_exactly_one(store: Arc<dyn Store>) {
    for n in 0..8u8 {
        let server = format!("srv-race-{n}");
        let license = parked(&*store, "alice", &server, 7_100 + u64::from(n)).await;
        let unparker = store.clone();
        let change = unpark(&license, &format!("192.0.2.{}", 100 + n));
        let unparked = tokio::spawn(async move {
            unparker
                .insert_operations(change.license_id, &[change], None, &[], None)
                .await
        });
        let order = pending("alice", &server, T0);
        let orderer = store.clone();
        let ordered = tokio::spawn(async move {
            orderer
                .insert_order(&order, &super::order_op(&order, T0), None, &[], None)
                .await
        });
        let (unparked, ordered) = (unparked.await.unwrap(), ordered.await.unwrap().unwrap());
        match (&unparked, &ordered) {
            (Ok(_), Inserted::Existing(l)) => assert_eq!(l.id, license.id),
            (Err(StoreError::ServerTaken(holder)), Inserted::Created(created)) => {
                assert_eq!(holder.id, created.id);
            }
            other => panic!("round {n}: {other:?}"),
        }
    }
}
