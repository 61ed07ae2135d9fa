pub fn first_line(text: &str) -> &str {
    match memchr::memchr(b'\n', text.as_bytes()) {
        Some(i) => &text[..i],
        None => text,
    }
}
