//! Shared by every service and handler.

pub fn render(value: &serde_json::Value) -> anyhow::Result<String> {
    Ok(serde_json::to_string(value)?)
}

pub fn greeting(who: &str) -> String {
    format!("hello, {who}")
}
