//! intruder: a CGI program for weir's end-to-end tests that plays a compromised script. It tries
//! what such a script would try against the rest of weir (signal or trace its processes, read
//! their memory, hijack the pool socket, rewrite PidFile) and prints what was refused. The
//! targets come in the query string (see `probes::Targets::from_query`). Never part of weir.

mod probes;

fn main() {
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    let targets = probes::Targets::from_query(&query);
    print!("Content-Type: text/plain\r\n\r\n");
    print!("{}", probes::run_all(&targets));
    print!("{}", probes::own_descriptors());
}
