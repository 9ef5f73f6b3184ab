//! Socket Mode in the Slack emulator: one WebSocket connection as Slack runs it — `hello`, then
//! the envelopes the emulator sends out and the app's acknowledgements in. Turning it on, sending
//! envelopes and asking for reconnects are [`SlackEmulator`](crate::slack::SlackEmulator) methods.

use std::sync::Arc;

use serde_json::{Value, json};

use super::state::{APP_ID, SlackState};
use crate::server::Recorder;

/// One Socket Mode WebSocket: `hello`, then envelopes out and acknowledgements in.
pub(super) async fn socket_connection(
    state: Arc<Recorder<SlackState>>,
    stream: tokio::net::TcpStream,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let hello = json!({"type": "hello", "num_connections": 1,
                       "debug_info": {"host": "emulator", "approximate_connection_time": 18060},
                       "connection_info": {"app_id": APP_ID}});
    if sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let number = state.update(|s| {
        s.socket_connects += 1;
        s.socket_senders.push(tx);
        s.socket_connects
    });
    loop {
        tokio::select! {
            // A connection silenced by the test goes quiet without closing — no frames, no pongs
            // — as a Slack socket that died on the way does.
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {
                if state.read().silenced_through >= number {
                    std::future::pending::<()>().await;
                }
            }
            out = rx.recv() => match out {
                Some(text) => {
                    let disconnect = text.contains("\"type\":\"disconnect\"");
                    if sink.send(Message::Text(text.into())).await.is_err() || disconnect {
                        break;
                    }
                }
                None => break,
            },
            inbound = source.next() => match inbound {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        state.update(|s| s.socket_acks.push(v));
                    }
                }
                Some(Ok(Message::Ping(p))) => {
                    let _ = sink.send(Message::Pong(p)).await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    state.update(|s| s.socket_senders.retain(|tx| !tx.is_closed()));
}
