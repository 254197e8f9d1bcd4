use super::*;
use proptest::prelude::*;

fn one(q: &str) -> Statement {
    let mut s = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    assert_eq!(s.len(), 1);
    s.remove(0)
}

fn select(q: &str) -> Select {
    match one(q) {
        Statement::Select(s) => *s,
        s => panic!("{s:?}"),
    }
}

const MS: i64 = 1_000_000;

#[test]
fn grafanas_panel_query_parses_into_its_parts() {
    let s = select(
        r#"SELECT mean("value") FROM "temperature" WHERE ("device" =~ /^(a|b)$/) AND time >= 1795255200000ms and time <= 1795258800000ms GROUP BY time(10s), "device" fill(null) tz('Europe/Berlin')"#,
    );
    assert_eq!(
        s.fields,
        vec![Field {
            expr: FieldExpr::Call {
                name: "mean".into(),
                args: vec![FieldExpr::Column("value".into())]
            },
            alias: None
        }]
    );
    assert_eq!(s.from, vec![Source::Name("temperature".into())]);
    let tag = Condition::Tag {
        key: "device".into(),
        op: TagOp::Match,
        value: TagValue::Regex("^(a|b)$".into()),
    };
    let at = |ns| TimeExpr {
        base: TimeBase::Epoch(ns),
        offset_ns: 0,
    };
    assert_eq!(
        s.condition,
        Some(Condition::And(
            Box::new(Condition::And(
                Box::new(tag),
                Box::new(Condition::Time(Ordering::GreaterEq, at(1795255200000 * MS)))
            )),
            Box::new(Condition::Time(Ordering::LessEq, at(1795258800000 * MS)))
        ))
    );
    assert_eq!(
        s.group_by,
        GroupBy {
            time: Some(TimeBuckets {
                every_ns: 10_000 * MS,
                offset_ns: 0
            }),
            tags: vec![Dimension::Tag("device".into())]
        }
    );
    assert_eq!(s.fill, Some(Fill::Null));
    assert_eq!(s.tz.as_deref(), Some("Europe/Berlin"));
}

#[test]
fn raw_selects_take_order_limits_and_relative_times() {
    let s = select(
        r#"select "value" from autogen."hum.rel" where time > now() - 6h - 30m order by time desc limit 1 offset 2 slimit 3 soffset 4"#,
    );
    assert_eq!(s.from, vec![Source::Name("hum.rel".into())]);
    assert!(s.descending);
    assert_eq!(
        (s.limit, s.offset, s.slimit, s.soffset),
        (Some(1), Some(2), Some(3), Some(4))
    );
    let six_and_a_half_hours = -(6 * 60 + 30) * 60_000 * MS;
    assert_eq!(
        s.condition,
        Some(Condition::Time(
            Ordering::Greater,
            TimeExpr {
                base: TimeBase::Now,
                offset_ns: six_and_a_half_hours
            }
        ))
    );
}

#[test]
fn times_come_as_strings_integers_and_on_either_side() {
    let c = |q: &str| {
        select(&format!("SELECT * FROM m WHERE {q}"))
            .condition
            .unwrap()
    };
    let epoch = |ns| TimeExpr {
        base: TimeBase::Epoch(ns),
        offset_ns: 0,
    };
    assert_eq!(
        c("time >= '2026-11-21T12:00:00Z'"),
        Condition::Time(Ordering::GreaterEq, epoch(1_795_262_400_000_000_000))
    );
    assert_eq!(c("time < 5"), Condition::Time(Ordering::Less, epoch(5)));
    assert_eq!(
        c("5s < time"),
        Condition::Time(Ordering::Greater, epoch(5_000 * MS))
    );
    assert_eq!(
        c("\"value\" > -2.5"),
        Condition::Field {
            key: "value".into(),
            op: Ordering::Greater,
            value: -2.5
        }
    );
}

#[test]
fn show_statements_parse_as_grafana_sends_them() {
    assert_eq!(one("SHOW DATABASES"), Statement::ShowDatabases);
    assert_eq!(
        one(r#"SHOW RETENTION POLICIES on "telehub""#),
        Statement::ShowRetentionPolicies
    );
    assert_eq!(
        one("SHOW MEASUREMENTS WITH MEASUREMENT =~ /te\\/mp/ LIMIT 100"),
        Statement::ShowMeasurements {
            with: Some(Source::Regex("te/mp".into())),
            limit: Some(100),
            offset: None
        }
    );
    assert_eq!(
        one(r#"SHOW TAG VALUES FROM "temperature" WITH KEY = "device" WHERE "device" != 'x'"#),
        Statement::ShowTagValues {
            from: Some(Source::Name("temperature".into())),
            keys: vec!["device".into()],
            condition: Some(Condition::Tag {
                key: "device".into(),
                op: TagOp::NotEq,
                value: TagValue::Text("x".into())
            })
        }
    );
    assert_eq!(
        one(r#"SHOW FIELD KEYS FROM "temperature""#),
        Statement::ShowFieldKeys {
            from: Some(Source::Name("temperature".into()))
        }
    );
    assert_eq!(
        one("show series from x"),
        Statement::Unsupported("SHOW SERIES FROM".into())
    );
    assert_eq!(
        parse("SHOW DATABASES; SHOW MEASUREMENTS;").unwrap().len(),
        2
    );
}

#[test]
fn errors_are_worded_like_influxdbs() {
    let e = |q: &str| parse(q).unwrap_err().to_string();
    assert_eq!(
        e("SELEC * FROM m"),
        "found SELEC, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL at line 1, char 1"
    );
    assert_eq!(
        e("SELECT"),
        "found EOF, expected identifier, string, number, bool at line 1, char 8"
    );
    assert_eq!(
        e("SELECT value FROM m WHERE"),
        "found EOF, expected identifier, string, number, bool at line 1, char 27"
    );
    assert_eq!(
        e("SELECT value\nFROM m GROUP BY time(x)"),
        "found x, expected duration at line 2, char 22"
    );
    assert_eq!(
        e("SELECT v FROM m ORDER BY v"),
        "only ORDER BY time supported at this time at line 1, char 26"
    );
    assert_eq!(
        e(""),
        "found EOF, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL at line 1, char 2"
    );
    let deep = format!(
        "SELECT v FROM m WHERE {}time > 0{}",
        "(".repeat(40),
        ")".repeat(40)
    );
    assert!(e(&deep).contains("nested deeper"));
    assert!(
        e(&format!("SELECT v FROM m WHERE time > {}", "9".repeat(30)))
            .contains("unable to parse integer")
    );
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,8}"
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = parse(&s);
    }

    #[test]
    fn errors_point_inside_the_query(s in "(SELECT|SHOW|WHERE|FROM|GROUP BY|[\"'/()=~<>,; a-z0-9])*") {
        if let Err(e) = parse(&s) {
            prop_assert!(e.line == 1 && e.char >= 1 && e.char <= s.chars().count() + 2, "{e} for {s:?}");
        }
    }

    #[test]
    fn generated_selects_parse_back_to_their_parts(
        agg in prop::sample::select(vec!["mean", "min", "max", "sum", "count", "first", "last"]),
        m in ident(), dev in ident(), from in 0i64..4_000_000_000_000, len in 1i64..1_000_000,
        every in 1i64..100_000, limit in 0u64..1000, desc in any::<bool>(),
    ) {
        let q = format!(
            "SELECT {agg}(\"value\") FROM \"{m}\" WHERE \"device\" = '{dev}' AND time >= {from}ms AND time < {}ms GROUP BY time({every}s), * fill(previous) ORDER BY time {} LIMIT {limit}",
            from + len, if desc { "DESC" } else { "ASC" },
        );
        let s = select(&q);
        prop_assert_eq!(&s.from, &vec![Source::Name(m)]);
        prop_assert_eq!(s.group_by.time, Some(TimeBuckets { every_ns: every * 1_000_000_000, offset_ns: 0 }));
        prop_assert_eq!(&s.group_by.tags, &vec![Dimension::All]);
        prop_assert_eq!(s.fill, Some(Fill::Previous));
        prop_assert_eq!(s.descending, desc);
        prop_assert_eq!(s.limit, Some(limit));
        let FieldExpr::Call { name, .. } = &s.fields[0].expr else { panic!() };
        prop_assert_eq!(name.as_str(), agg);
    }
}
