//! A Lambda handler. Real handlers depend on `lambda_runtime`, which is how nixcrate
//! recognises them; crates.io is out of reach where this example is tested, so
//! nixcrate.toml declares its kind instead.
use std::io::Read;

fn main() {
    let mut event = String::new();
    std::io::stdin().read_to_string(&mut event).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(if event.is_empty() { "{}" } else { &event }).unwrap();
    println!(
        "{}",
        common::render(&serde_json::json!({ "ingested": parsed })).unwrap()
    );
}
