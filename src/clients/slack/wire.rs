//! Slack wire types: Web API answers and the interaction payloads Slack sends us.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct PostedMessage {
    pub channel: String,
    pub ts: String,
}

#[derive(Debug, Deserialize)]
pub struct UsersListResponse {
    #[serde(default)]
    pub members: Vec<Member>,
    pub response_metadata: Option<ResponseMetadata>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseMetadata {
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Member {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub real_name: Option<String>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub real_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl Member {
    /// Every name a person may be called by.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = [self.name.clone(), self.real_name.clone()]
            .into_iter()
            .flatten()
            .collect();
        if let Some(p) = &self.profile {
            out.extend(
                [p.real_name.clone(), p.display_name.clone()]
                    .into_iter()
                    .flatten(),
            );
        }
        out.retain(|n| !n.trim().is_empty());
        out
    }
}

/// An interaction payload (the fields we use): `block_actions` (a click, with its `trigger_id`
/// for opening a modal) or `view_submission` (a modal submitted, with its `view`).
#[derive(Debug, Deserialize)]
pub struct InteractionPayload {
    #[serde(rename = "type")]
    pub kind: String,
    pub user: Option<InteractionUser>,
    #[serde(default)]
    pub actions: Vec<Action>,
    pub container: Option<Container>,
    pub channel: Option<Channel>,
    #[serde(default)]
    pub trigger_id: Option<String>,
    #[serde(default)]
    pub view: Option<ViewPayload>,
}

/// The modal a `view_submission` comes from: which one (`callback_id`, `private_metadata`,
/// `id`, `hash`) and what the person entered (`state.values`: block id → action id → value).
#[derive(Debug, Deserialize)]
pub struct ViewPayload {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub callback_id: Option<String>,
    #[serde(default)]
    pub private_metadata: Option<String>,
    #[serde(default)]
    pub state: Option<ViewState>,
    #[serde(default)]
    pub blocks: Vec<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ViewState {
    #[serde(default)]
    pub values:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, ViewStateValue>>,
}

/// One element's state: a text input's `value`, a checkbox group's `selected_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ViewStateValue {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub selected_options: Option<Vec<SelectedOption>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SelectedOption {
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub struct InteractionUser {
    pub id: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Action {
    pub action_id: String,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Container {
    #[serde(default)]
    pub message_ts: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Channel {
    pub id: String,
}
