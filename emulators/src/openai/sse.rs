//! The server-sent-event stream of the OpenAI-compatible emulator: the data-only events of a
//! streamed answer (role chunk, content deltas, the ending chosen by [`Ending`], `data: [DONE]`,
//! a keep-alive comment and some `\r\n` line ends), cut into chunks in the middle of every event,
//! and the streaming response that writes them one by one.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::state::Ending;

/// The SSE body for an answer, cut into chunks at the middle of every event.
pub fn sse_chunks(model: &str, answer: &str, ending: &Ending) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-emulator", "object": "chat.completion.chunk", "created": 1_700_000_000,
               "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let mut events = vec![
        ": keep-alive\n".to_string(),
        format!(
            "data: {}\r\n\r\n",
            chunk(json!({"role": "assistant", "content": ""}), Value::Null)
        ),
    ];
    let chars: Vec<char> = answer.chars().collect();
    let per = chars.len().div_ceil(5).max(1);
    for piece in chars.chunks(per) {
        let text: String = piece.iter().collect();
        events.push(format!(
            "data: {}\n\n",
            chunk(json!({"content": text}), Value::Null)
        ));
    }
    match ending {
        Ending::Done => {
            events.push(format!("data: {}\n\n", chunk(json!({}), json!("stop"))));
            events.push(format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-emulator", "object": "chat.completion.chunk", "created": 1_700_000_000,
                       "model": model, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
            ));
            events.push("data: [DONE]\n\n".to_string());
        }
        Ending::Truncated => {}
        Ending::Error(msg) => events.push(format!(
            "data: {}\n\n",
            json!({"error": {"message": msg, "type": "server_error", "code": null}})
        )),
    }
    let mut bytes = Vec::new();
    let mut cuts = Vec::new();
    for e in &events {
        let start = bytes.len();
        bytes.extend_from_slice(e.as_bytes());
        cuts.push(start + e.len() / 2);
    }
    let bytes = Bytes::from(bytes);
    let mut out = Vec::new();
    let mut prev = 0;
    for cut in cuts.into_iter().filter(|c| *c > 0) {
        out.push(bytes.slice(prev..cut));
        prev = cut;
    }
    out.push(bytes.slice(prev..));
    out
}

pub(super) fn stream(chunks: Vec<Bytes>) -> Response {
    let body = futures_util::stream::unfold(chunks.into_iter(), |mut it| async move {
        let c = it.next()?;
        // Separate writes, so the client sees the chunks one by one.
        tokio::task::yield_now().await;
        Some((Ok::<Bytes, Infallible>(c), it))
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_rejoin_to_a_well_formed_stream() {
        let all: Vec<u8> = sse_chunks("m", "Hôte ok", &Ending::Done)
            .iter()
            .flat_map(|b| b.to_vec())
            .collect();
        let text = String::from_utf8(all).unwrap();
        assert!(text.starts_with(": keep-alive\n"));
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert!(text.contains("\"finish_reason\":\"stop\""));
        let truncated: Vec<u8> = sse_chunks("m", "x", &Ending::Truncated)
            .iter()
            .flat_map(|b| b.to_vec())
            .collect();
        assert!(!String::from_utf8(truncated).unwrap().contains("[DONE]"));
    }
}
