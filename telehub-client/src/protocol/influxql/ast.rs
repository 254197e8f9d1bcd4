//! The typed statements of the InfluxQL subset (docs/grafana.md): what the parser
//! produces and the hub's `/query` executor reads. Times are nanoseconds since the Unix
//! epoch, durations nanoseconds, as InfluxDB has them. Pure data.

/// One statement of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    ShowDatabases,
    ShowRetentionPolicies,
    ShowMeasurements {
        /// `WITH MEASUREMENT =~ /re/` (or `= "name"`, kept as a name).
        with: Option<Source>,
        limit: Option<u64>,
        offset: Option<u64>,
    },
    ShowTagKeys {
        from: Option<Source>,
    },
    ShowTagValues {
        from: Option<Source>,
        /// The keys asked for (`WITH KEY = "device"` or `IN ("a", "b")`).
        keys: Vec<String>,
        condition: Option<Condition>,
    },
    ShowFieldKeys {
        from: Option<Source>,
    },
    Select(Box<Select>),
    /// A statement InfluxQL has and this subset does not answer (`SHOW SERIES`, `DROP …`):
    /// parsed up to the next `;` so the others still run; the executor names it.
    Unsupported(String),
}

/// A `FROM` source or a `WITH MEASUREMENT` match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A measurement name (a `db.rp.` prefix dropped).
    Name(String),
    /// `/regex/`, its pattern as written (escaped `\/` unescaped).
    Regex(String),
}

/// A `SELECT` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub fields: Vec<Field>,
    pub from: Vec<Source>,
    pub condition: Option<Condition>,
    pub group_by: GroupBy,
    pub fill: Option<Fill>,
    pub descending: bool,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub slimit: Option<u64>,
    pub soffset: Option<u64>,
    /// `tz('Europe/Berlin')`, as given.
    pub tz: Option<String>,
    /// `INTO …`, kept so the executor can refuse it by name.
    pub into: bool,
}

/// One projection of a `SELECT` and its `AS` alias.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub expr: FieldExpr,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpr {
    /// `*`
    Wildcard,
    /// A field (or tag) by name.
    Column(String),
    /// `name(args)`, the name lower-cased.
    Call {
        name: String,
        args: Vec<FieldExpr>,
    },
    Number(f64),
    /// `"value" * 2`, `mean(x) + 1`: arithmetic between projections.
    Arithmetic(Box<FieldExpr>, char, Box<FieldExpr>),
}

/// A `WHERE` condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    /// `time OP t`, normalised with `time` on the left.
    Time(Ordering, TimeExpr),
    /// `"key" OP 'text'` or `"key" =~ /re/`.
    Tag {
        key: String,
        op: TagOp,
        value: TagValue,
    },
    /// `"key" OP number` (a comparison on field values).
    Field {
        key: String,
        op: Ordering,
        value: f64,
    },
}

/// `<`, `<=`, `=`, `!=`, `>=`, `>` between a time or field and a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    Less,
    LessEq,
    Eq,
    NotEq,
    GreaterEq,
    Greater,
}

impl Ordering {
    /// The same comparison with its sides swapped (`5 < x` is `x > 5`).
    pub fn flipped(self) -> Self {
        match self {
            Self::Less => Self::Greater,
            Self::LessEq => Self::GreaterEq,
            Self::GreaterEq => Self::LessEq,
            Self::Greater => Self::Less,
            o => o,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagOp {
    Eq,
    NotEq,
    Match,
    NotMatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValue {
    Text(String),
    Regex(String),
}

/// A point in time: `now()` or an absolute time, plus an offset (`now() - 6h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeExpr {
    pub base: TimeBase,
    pub offset_ns: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBase {
    Now,
    /// Nanoseconds since the Unix epoch.
    Epoch(i64),
}

impl TimeExpr {
    /// The time in nanoseconds, `now_ns` standing for `now()`; saturating.
    pub fn resolve(self, now_ns: i64) -> i64 {
        let base = match self.base {
            TimeBase::Now => now_ns,
            TimeBase::Epoch(t) => t,
        };
        base.saturating_add(self.offset_ns)
    }
}

/// `GROUP BY` dimensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupBy {
    /// `time(every[, offset])`, nanoseconds.
    pub time: Option<TimeBuckets>,
    pub tags: Vec<Dimension>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBuckets {
    pub every_ns: i64,
    pub offset_ns: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    Tag(String),
    /// `*`: every tag.
    All,
    Regex(String),
}

/// What an empty time bucket shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    Null,
    None,
    Previous,
    Linear,
    Number(f64),
}
