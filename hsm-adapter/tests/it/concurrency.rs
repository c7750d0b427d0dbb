//! Many callers at once, from threads and from async tasks.

use hsm_adapter::{TotpAlgorithm, TotpPolicy, VerifyRequest};

use crate::token::{enroll, vault};

fn request(index: usize) -> (VerifyRequest, u64) {
    let now = 1_700_000_000 + index as u64 * 30;
    let (owner, sealed, code) = enroll(&format!("concurrent/{index}"), TotpAlgorithm::Sha1, now);
    let request = VerifyRequest {
        owner,
        sealed,
        code,
        policy: TotpPolicy::default(),
        now,
    };
    (request, now / 30)
}

#[test]
fn many_threads_verify_at_once() {
    let requests: Vec<_> = (0..8).map(request).collect();
    std::thread::scope(|scope| {
        for (request, step) in &requests {
            scope.spawn(move || {
                for _ in 0..50 {
                    assert_eq!(vault().verify(request.clone()).wait().unwrap(), Some(*step));
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_async_tasks_verify_at_once() {
    let requests = tokio::task::spawn_blocking(|| (100..132).map(request).collect::<Vec<_>>())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for (request, step) in requests {
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                assert_eq!(vault().verify(request.clone()).await.unwrap(), Some(step));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}
