use smallvec::SmallVec;

fn main() {
    let mut ids: SmallVec<[u32; 4]> = SmallVec::new();
    ids.extend([1, 2, 3]);
    let body = serde_json::json!({ "service": "api", "ids": ids.to_vec() });
    println!(
        "{}",
        textwrap_lite::first_line(&common::render(&body).unwrap())
    );
    println!("{}", common::greeting("api"));
}
