//! Pub/sub: a subscriber on its own connection, fed by the shared client.
//!
//! A subscribed connection only receives, so it cannot be the shared one (redis-lanes
//! refuses `SUBSCRIBE` there). `client.subscriber()` opens a dedicated connection whose
//! messages arrive as a `Stream`, through a bounded buffer. This example subscribes to
//! two channels and a pattern, publishes through the shared client, unsubscribes from one
//! channel, and drops the subscriber, which closes its connection.
//!
//! Connects to `REDIS_URL` if set, otherwise starts a throw-away `redis-server`.
//!
//! ```sh
//! cargo run -p redis-lanes --example pubsub
//! ```

use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis_lanes::{Client, Message, MessageKind, Subscriber};
use redis_lanes_testkit::Target;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const ORDERS: &str = "example:pubsub:orders";
const PAYMENTS: &str = "example:pubsub:payments";
const AUDIT: &str = "example:pubsub:audit.*";

/// The next message, or an error if none comes within a second.
async fn next(subscriber: &mut Subscriber) -> Result<Message> {
    match tokio::time::timeout(Duration::from_secs(1), subscriber.next()).await {
        Ok(Some(message)) => Ok(message?),
        Ok(None) => Err("the subscriber's connection ended".into()),
        Err(_) => Err("no message within 1 s".into()),
    }
}

fn describe(message: &Message) -> String {
    let channel = message.channel_str().unwrap_or("<binary>");
    let payload = message.payload_str().unwrap_or("<binary>");
    match message.pattern_str() {
        Some(pattern) => format!("{channel} (pattern {pattern}): {payload}"),
        None => format!("{channel}: {payload}"),
    }
}

/// `PUBLISH` through the shared client; returns how many subscriptions received it.
async fn publish(conn: &mut Client, channel: &str, payload: &str) -> Result<u64> {
    Ok(conn.publish(channel, payload).await?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let target = Target::from_env_or_start("REDIS_URL")?;
    let url = target.url().to_owned();
    let client = Client::connect(&url).await?;
    let mut conn = client.clone();

    let mut subscriber = client.subscriber().await?;
    // Each call returns once the server confirmed every name, so nothing published
    // after it can be missed.
    subscriber.subscribe(&[ORDERS, PAYMENTS]).await?;
    subscriber.psubscribe(AUDIT).await?;
    println!("subscribed to {ORDERS}, {PAYMENTS} and pattern {AUDIT}");

    let audit = "example:pubsub:audit.login";
    let sent = [(ORDERS, "order 1"), (PAYMENTS, "paid 1"), (audit, "alice")];
    for (channel, payload) in sent {
        let receivers = publish(&mut conn, channel, payload).await?;
        if receivers != 1 {
            return Err(format!("{channel}: {receivers} receivers, expected 1").into());
        }
    }
    // Messages arrive in the order they were published.
    for (channel, payload) in sent {
        let message = next(&mut subscriber).await?;
        println!("received {}", describe(&message));
        if message.channel_str() != Some(channel) || message.payload_str() != Some(payload) {
            return Err(format!("expected {channel}: {payload}, got {message:?}").into());
        }
        // Only the pattern subscription matches the audit channel.
        let (kind, pattern) = if channel == audit {
            (MessageKind::Pattern, Some(AUDIT))
        } else {
            (MessageKind::Channel, None)
        };
        if message.kind() != kind || message.pattern_str() != pattern {
            return Err(format!("{channel}: delivered as {:?}", message.kind()).into());
        }
    }

    // After the server confirmed the unsubscribe, nothing more of that channel arrives.
    subscriber.unsubscribe(PAYMENTS).await?;
    let receivers = publish(&mut conn, PAYMENTS, "paid 2").await?;
    publish(&mut conn, ORDERS, "order 2").await?;
    let message = next(&mut subscriber).await?;
    println!(
        "after UNSUBSCRIBE {PAYMENTS}: its publish reached {receivers} subscriptions; next \
         message is {}",
        describe(&message)
    );
    if receivers != 0 || message.channel_str() != Some(ORDERS) {
        return Err("a message of an unsubscribed channel arrived".into());
    }

    let stats = client.stats();
    println!(
        "subscriber: {} received, {} dropped; client total: {}",
        subscriber.received(),
        subscriber.dropped(),
        stats.subscriber_messages
    );

    // Dropping the subscriber closes its connection: the server forgets the
    // subscriptions (the check polls: the server notices a closed socket on its own time).
    drop(subscriber);
    let mut left = u64::MAX;
    for _ in 0..50 {
        let (_, count): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(ORDERS)
            .query_async(&mut conn)
            .await?;
        left = count;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("after drop: {left} subscribers to {ORDERS} on the server");
    if left != 0 {
        return Err("the dropped subscriber's connection is still subscribed".into());
    }

    drop(conn);
    client.close().await;
    println!("closed");
    Ok(())
}
