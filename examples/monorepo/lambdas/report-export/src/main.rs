fn main() {
    let mut buf = itoa::Buffer::new();
    println!("{}", serde_json::json!({ "rows": buf.format(42u64) }));
}
