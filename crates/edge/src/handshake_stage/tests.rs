//! The eviction choice, as data: which connection a full stage gives up.

use super::*;

fn source(text: &str) -> Source {
    Source::of(text.parse().unwrap())
}

/// Members with a name each, entered one after the other.
fn stage(entries: &[(&'static str, &str)]) -> (Members<&'static str>, HashMap<&'static str, u64>) {
    let mut members = Members::default();
    let start = Instant::now();
    let mut ids = HashMap::new();
    for (i, (name, from)) in entries.iter().enumerate() {
        ids.insert(*name, members.insert(source(from), start + Duration::from_millis(i as u64), *name));
    }
    (members, ids)
}

fn evict(members: &mut Members<&'static str>) -> Option<&'static str> {
    members.evict(Instant::now() + Duration::from_secs(1)).map(|(name, _)| name)
}

#[test]
fn evicts_from_the_source_holding_the_most() {
    let (mut members, _) =
        stage(&[("a1", "192.0.2.1"), ("b1", "192.0.2.2"), ("b2", "192.0.2.2"), ("c1", "192.0.2.3")]);
    assert_eq!(evict(&mut members), Some("b1"));
    assert_eq!(members.len(), 3);
}

#[test]
fn silent_connections_go_first_then_the_fewest_bytes_then_the_oldest() {
    let (mut members, ids) = stage(&[
        ("hello-start", "192.0.2.9"),
        ("silent-old", "192.0.2.9"),
        ("most", "192.0.2.9"),
        ("silent-new", "192.0.2.9"),
        ("few", "192.0.2.9"),
    ]);
    members.received(ids["hello-start"], 11);
    members.received(ids["most"], 300);
    members.received(ids["few"], 5);
    let order: Vec<_> = std::iter::from_fn(|| evict(&mut members)).collect();
    assert_eq!(order, ["silent-old", "silent-new", "few", "hello-start", "most"]);
    assert_eq!(members.len(), 0);
    assert!(members.by_source.is_empty() && members.by_size.is_empty(), "nothing left behind");
}

#[test]
fn bytes_add_up_across_reads() {
    let (mut members, ids) = stage(&[("two-reads", "192.0.2.9"), ("one-read", "192.0.2.9")]);
    members.received(ids["two-reads"], 3);
    members.received(ids["two-reads"], 3);
    members.received(ids["one-read"], 5);
    assert_eq!(evict(&mut members), Some("one-read"));
}

#[test]
fn the_largest_source_changes_as_members_come_and_go() {
    let (mut members, ids) = stage(&[
        ("a1", "192.0.2.1"),
        ("a2", "192.0.2.1"),
        ("b1", "192.0.2.2"),
        ("b2", "192.0.2.2"),
        ("b3", "192.0.2.2"),
    ]);
    assert!(members.remove(ids["b1"]).is_some());
    assert!(members.remove(ids["b2"]).is_some());
    assert!(members.remove(ids["b2"]).is_none(), "a second removal is a no-op");
    // a holds two, b one.
    assert_eq!(evict(&mut members), Some("a1"));
}

#[test]
fn one_slash_64_is_one_source() {
    let (mut members, _) = stage(&[
        ("v4", "192.0.2.1"),
        ("v4-again", "192.0.2.1"),
        ("v6-one", "2001:db8:0:1::1"),
        ("v6-two", "2001:db8:0:1::2"),
        ("v6-three", "2001:db8:0:1:ffff::3"),
    ]);
    assert_eq!(evict(&mut members), Some("v6-one"), "three addresses of one /64 outnumber two of one IPv4");
}

#[test]
fn a_proxy_header_moves_the_member_to_the_real_client() {
    let (mut members, ids) =
        stage(&[("p1", "192.0.2.100"), ("p2", "192.0.2.100"), ("p3", "192.0.2.100"), ("x", "192.0.2.7")]);
    members.received(ids["p1"], 40);
    members.rekey(ids["p1"], source("198.51.100.1"));
    members.rekey(ids["p2"], source("198.51.100.2"));
    members.rekey(ids["p3"], source("198.51.100.2"));
    // Every source now holds one but 198.51.100.2, which holds two.
    let (name, gone) = members.evict(Instant::now()).unwrap();
    assert_eq!((name, gone.source, gone.source_left), ("p2", source("198.51.100.2"), 1));
    // The moved member kept its byte count.
    assert_eq!(members.all[&ids["p1"]].bytes, 40);
}

#[test]
fn updates_for_departed_members_are_ignored() {
    let (mut members, ids) = stage(&[("gone", "192.0.2.1"), ("here", "192.0.2.1")]);
    members.remove(ids["gone"]);
    members.received(ids["gone"], 10);
    members.rekey(ids["gone"], source("192.0.2.2"));
    assert_eq!(members.len(), 1);
    assert_eq!(members.by_size.iter().copied().collect::<Vec<_>>(), [(1, source("192.0.2.1"))]);
}

#[test]
fn a_full_stage_admits_a_newcomer_and_wakes_the_evicted() {
    let stage = HandshakeStage::new(3);
    let attacker = source("127.0.0.2");
    let held: Vec<_> = (0..3).map(|_| stage.enter(attacker)).collect();
    assert!(held.iter().all(|(_, made_room)| made_room.is_none()));
    let (ticket, made_room) = stage.enter(source("127.0.0.3"));
    let made_room = made_room.expect("a full stage makes room");
    assert_eq!((made_room.source, made_room.bytes, made_room.source_left), (attacker, 0, 2));
    assert!(held[0].0.evicted().is_cancelled(), "the oldest silent one is woken");
    assert!(!held[1].0.evicted().is_cancelled() && !ticket.evicted().is_cancelled());
    assert_eq!(stage.len(), 3);
    drop(held);
    assert_eq!(stage.len(), 1, "dropping an evicted ticket frees nothing twice");
    drop(ticket);
    assert!(stage.is_empty());
}
