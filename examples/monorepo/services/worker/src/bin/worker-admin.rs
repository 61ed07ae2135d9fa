fn main() {
    println!("{}", common::greeting("admin"));
}
