//! Literal SQL in place of bound parameters, for tools that take SQL text (pgbench, the
//! sqlite3 shell): `uplift debug sql upgrade-item` prints the engine's statements so.

/// `sql` with each numbered placeholder named in `params` (`$N` as PostgreSQL writes
/// them, `?N` as SQLite does) replaced by its SQL text. Unnamed placeholders stay.
pub fn with_params(sql: &str, params: &[(usize, String)]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(['$', '?']) {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let number = rest[at + 1..at + 1 + digits].parse::<usize>().ok();
        match number.and_then(|n| params.iter().find(|(p, _)| *p == n)) {
            Some((_, text)) => out.push_str(text),
            None => out.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// Panics unless `sql` uses each of the placeholders 1 to `count` and no other.
#[cfg(test)]
pub(super) fn assert_binds_exactly(sql: &str, count: usize) {
    let all: Vec<(usize, String)> = (1..=count).map(|n| (n, format!("p{n}_"))).collect();
    let filled = with_params(sql, &all);
    assert!(!filled.contains(['$', '?']), "{filled}");
    for n in 1..=count {
        assert!(filled.contains(&format!("p{n}_")), "placeholder {n} unused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_by_number_not_by_prefix() {
        let sql = "SELECT $1, $10, $2::integer, '$'";
        let out = with_params(sql, &[(1, "a".into()), (2, "NULL".into())]);
        assert_eq!(out, "SELECT a, $10, NULL::integer, '$'");
    }

    #[test]
    fn sqlite_placeholders_are_replaced_the_same_way() {
        let sql = "SELECT ?1, ?11, ?2 IS NULL, '?'";
        let out = with_params(sql, &[(1, "a".into()), (11, "b".into())]);
        assert_eq!(out, "SELECT a, b, ?2 IS NULL, '?'");
    }
}
