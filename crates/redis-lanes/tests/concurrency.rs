//! Many tasks on clones of one client: every reply must belong to its own request.

mod common;

use std::time::Duration;

use redis::AsyncCommands;

const TASKS: usize = 64;
const COMMANDS: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_two_thousand_mixed_commands_each() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let mut conn = client.clone();
        tasks.push(tokio::spawn(async move {
            let counter = format!("c:{task}");
            let list = format!("l:{task}");
            let mut expected_count = 0i64;
            let mut expected_len = 0i64;
            for i in 0..COMMANDS {
                let key = format!("k:{task}:{i}");
                match i % 5 {
                    0 => {
                        let _: () = conn.set(&key, i).await.unwrap();
                        let back: usize = conn.get(&key).await.unwrap();
                        assert_eq!(back, i, "task {task} GET {key}");
                    }
                    1 => {
                        expected_count += i as i64;
                        let n: i64 = conn.incr(&counter, i).await.unwrap();
                        assert_eq!(n, expected_count, "task {task} INCRBY");
                    }
                    2 => {
                        expected_len += 1;
                        let len: i64 = conn.rpush(&list, &key).await.unwrap();
                        assert_eq!(len, expected_len, "task {task} RPUSH");
                    }
                    3 => {
                        let echoed: String = redis::cmd("ECHO")
                            .arg(&key)
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                        assert_eq!(echoed, key);
                    }
                    _ => {
                        let (a, b): (String, i64) = redis::pipe()
                            .cmd("ECHO")
                            .arg(&key)
                            .strlen(&counter)
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                        assert_eq!(a, key);
                        assert_eq!(b, expected_count.to_string().len() as i64);
                    }
                }
            }
            let len: i64 = conn.llen(&list).await.unwrap();
            assert_eq!(len, expected_len);
        }));
    }
    let all = futures_join(tasks);
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("load finished within 120 s");
    let stats = client.stats();
    assert!(stats.replies >= (TASKS * COMMANDS) as u64, "{stats:?}");
    // Auto-pipelining: many requests share a write.
    assert!(
        stats.written_batches < stats.written_requests,
        "no batching happened: {stats:?}"
    );
    assert_eq!(stats.in_flight, 0);
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        task.await.expect("task panicked");
    }
}
