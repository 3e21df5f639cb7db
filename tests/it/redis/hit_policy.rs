//! One answer to "may this stored response be written to this request as
//! it is", whichever path serves the hit: a ranged or conditional request
//! that arrives on one instance while another fills the key is never handed
//! that fill as a full 200.

use super::util::{two_synced, RedisOpts, RedisServer};
use crate::util::Origin;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ranged_request_waiting_on_another_instances_fill_is_not_answered_a_full_200() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let (a, b) = two_synced(&origin, &RedisOpts::server(&redis)).await;
    let path = "/item/ranged-wait";
    let filler = {
        let client = a.client.clone();
        let url = a.url(path);
        tokio::spawn(async move {
            client
                .get(url)
                .header("x-workspace-id", "w1")
                .header("x-origin-delay-ms", "600")
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    for (name, value) in [
        ("range", "bytes=0-3"),
        ("if-none-match", "\"whatever\""),
        ("if-modified-since", "Sun, 29 Nov 2026 00:00:00 GMT"),
    ] {
        let r = b.get_with(path, Some("w1"), None, &[(name, value)]).await;
        let cs = r.header("cache-status").unwrap_or_default().to_string();
        assert!(
            !cs.contains("coalesced"),
            "{name}: served another instance's fill as it is: {} {cs}",
            r.status
        );
    }
    assert_eq!(filler.await.unwrap(), 200);
}
