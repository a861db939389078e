//! Rule parameters (contract section 3, "Rule parameters"): the `params` table of a rule in
//! `pack.toml`, the overrides in `policy.toml` (`[params."pack/rule"]`), and the read-only map a
//! script sees as `params`.
//!
//! A param's type is the type of its value in the manifest; an override must keep it (an
//! integer is accepted for a float and becomes a float). Names are `[a-z_][a-z0-9_]*`; values
//! are integers, floats, bools or strings. Everything else is refused at load, naming the file,
//! line and column.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::problem::{Problems, Source};

/// The value of a rule parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// An integer (`i64`, Rhai's integer).
    Int(i64),
    /// A float.
    Float(f64),
    /// A bool.
    Bool(bool),
    /// A string.
    Str(String),
}

impl ParamValue {
    /// The type's name, as messages say it.
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamValue::Int(_) => "integer",
            ParamValue::Float(_) => "float",
            ParamValue::Bool(_) => "bool",
            ParamValue::Str(_) => "string",
        }
    }

    /// The type's name with its article ("an integer", "a float").
    fn a_type(&self) -> &'static str {
        match self {
            ParamValue::Int(_) => "an integer",
            ParamValue::Float(_) => "a float",
            ParamValue::Bool(_) => "a bool",
            ParamValue::Str(_) => "a string",
        }
    }

    /// `self` as a value for a param whose manifest value is `like`: the same type, or an
    /// integer for a float (which becomes a float). `None` for any other type.
    pub fn conform_to(&self, like: &ParamValue) -> Option<ParamValue> {
        match (self, like) {
            (ParamValue::Int(n), ParamValue::Float(_)) => Some(ParamValue::Float(*n as f64)),
            (ParamValue::Int(_), ParamValue::Int(_))
            | (ParamValue::Float(_), ParamValue::Float(_))
            | (ParamValue::Bool(_), ParamValue::Bool(_))
            | (ParamValue::Str(_), ParamValue::Str(_)) => Some(self.clone()),
            _ => None,
        }
    }

    /// Parses a command-line value for a param whose manifest value is `like` (`5000`,
    /// `2.5`, `true`, a string as it is or in double quotes).
    pub fn parse_like(text: &str, like: &ParamValue) -> Result<ParamValue, String> {
        let text = text.trim();
        let parsed = match like {
            ParamValue::Int(_) => text.parse::<i64>().ok().map(ParamValue::Int),
            ParamValue::Float(_) => text
                .parse::<f64>()
                .ok()
                .filter(|x| !x.is_nan())
                .map(ParamValue::Float),
            ParamValue::Bool(_) => text.parse::<bool>().ok().map(ParamValue::Bool),
            ParamValue::Str(_) => Some(ParamValue::Str(
                text.strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .unwrap_or(text)
                    .to_string(),
            )),
        };
        parsed.ok_or_else(|| format!("`{text}` is not {}", like.a_type()))
    }

    /// A TOML value: any other value (an array, a table, a date) is refused with the reason.
    fn from_toml(value: &toml::Value) -> Result<ParamValue, String> {
        match value {
            toml::Value::Integer(n) => Ok(ParamValue::Int(*n)),
            toml::Value::Float(x) => Ok(ParamValue::Float(*x)),
            toml::Value::Boolean(b) => Ok(ParamValue::Bool(*b)),
            toml::Value::String(s) => Ok(ParamValue::Str(s.clone())),
            toml::Value::Array(_) => Err("an array".to_string()),
            toml::Value::Table(_) => Err("a table".to_string()),
            toml::Value::Datetime(_) => Err("a date".to_string()),
        }
    }

    pub(crate) fn to_dynamic(&self) -> rhai::Dynamic {
        match self {
            ParamValue::Int(n) => (*n).into(),
            ParamValue::Float(x) => (*x).into(),
            ParamValue::Bool(b) => (*b).into(),
            ParamValue::Str(s) => s.as_str().into(),
        }
    }
}

/// As JSON: a number, a bool or a string (a non-finite float is null).
impl serde::Serialize for ParamValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::Int(n) => serializer.serialize_i64(*n),
            ParamValue::Float(x) => serializer.serialize_f64(*x),
            ParamValue::Bool(b) => serializer.serialize_bool(*b),
            ParamValue::Str(s) => serializer.serialize_str(s),
        }
    }
}

/// As TOML writes it (`3000`, `3000.0`, `true`, `"telegram"`).
impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(n) => write!(f, "{n}"),
            ParamValue::Float(x) if x.is_nan() => write!(f, "nan"),
            ParamValue::Float(x) if x.is_infinite() => {
                write!(f, "{}inf", if *x < 0.0 { "-" } else { "" })
            }
            // `{:?}` keeps the `.0` of a whole float, as TOML needs.
            ParamValue::Float(x) => write!(f, "{x:?}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Str(s) => {
                // A JSON string is a TOML basic string.
                let quoted = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                write!(f, "{quoted}")
            }
        }
    }
}

/// The params of one rule, sorted by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(Vec<(String, ParamValue)>);

impl Params {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v)
    }

    /// Every param, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets an existing param to `value` (conformed to its type). The error says why not.
    pub fn set(&mut self, name: &str, value: &ParamValue) -> Result<(), String> {
        let known = self.names();
        let Some((_, current)) = self.0.iter_mut().find(|(n, _)| n == name) else {
            return Err(format!(
                "the rule has no param \"{name}\" (its params: {known})"
            ));
        };
        match value.conform_to(current) {
            Some(v) => {
                *current = v;
                Ok(())
            }
            None => Err(format!(
                "the param is {} in the pack; an override must be one too{}, not {}",
                current.a_type(),
                if matches!(current, ParamValue::Float(_)) {
                    " (or an integer)"
                } else {
                    ""
                },
                value.a_type()
            )),
        }
    }

    fn names(&self) -> String {
        if self.0.is_empty() {
            return "none".to_string();
        }
        self.0
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The read-only map a script sees as `params`.
    pub(crate) fn to_map(&self) -> rhai::Map {
        self.0
            .iter()
            .map(|(n, v)| (n.as_str().into(), v.to_dynamic()))
            .collect()
    }

    /// Params from `(name, value)` pairs (later pairs win); for tools and tests.
    pub fn from_pairs<I, S>(pairs: I) -> Params
    where
        I: IntoIterator<Item = (S, ParamValue)>,
        S: Into<String>,
    {
        let mut map = BTreeMap::new();
        for (name, value) in pairs {
            map.insert(name.into(), value);
        }
        Params(map.into_iter().collect())
    }
}

/// Whether `name` is a valid param name: `[a-z_][a-z0-9_]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A `params` table as TOML gives it, with positions.
pub(crate) type RawParams = Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>;

/// The `params` of rule `rule_id` in a manifest; problems go to `problems`.
pub(crate) fn load_rule_params(
    raw: Option<&RawParams>,
    rule_id: &str,
    source: &Source<'_>,
    problems: &mut Problems,
) -> Params {
    let Some(raw) = raw else {
        return Params::default();
    };
    let mut pairs = Vec::new();
    for (name, value) in raw.get_ref() {
        if !valid_name(name.get_ref()) {
            problems.in_source(
                source,
                name.span(),
                format!(
                    "rule \"{rule_id}\": param name \"{}\" must match [a-z_][a-z0-9_]*",
                    name.get_ref()
                ),
            );
            continue;
        }
        match ParamValue::from_toml(value.get_ref()) {
            Ok(v) => pairs.push((name.get_ref().clone(), v)),
            Err(what) => problems.in_source(
                source,
                value.span(),
                format!(
                    "rule \"{rule_id}\": param \"{}\" is {what}; a param is an integer, a float, a bool or a string",
                    name.get_ref()
                ),
            ),
        }
    }
    Params::from_pairs(pairs)
}

/// One override from `policy.toml`, with the positions of its parts.
struct Override {
    /// `pack/rule` as written.
    rule: String,
    name: String,
    /// The value, or what it is when not a param value (an array, a table, a date).
    value: Result<ParamValue, String>,
    name_at: (usize, usize),
    value_at: (usize, usize),
}

/// Every `[params."pack/rule"]` override of a policy, in file order.
#[derive(Default)]
pub(crate) struct Overrides {
    file: String,
    /// Every `pack/rule` table and where it is.
    tables: Vec<(String, (usize, usize))>,
    list: Vec<Override>,
}

#[derive(Deserialize)]
struct RawPolicyParams {
    #[serde(default)]
    params: BTreeMap<Spanned<String>, RawParams>,
}

impl Overrides {
    /// The `[params]` of `policy.toml`. A file that is not TOML is the policy loader's to
    /// report; a `params` of the wrong shape is reported here.
    pub(crate) fn parse(source: &Source<'_>, problems: &mut Problems) -> Overrides {
        let mut overrides = Overrides {
            file: source.name.clone(),
            ..Overrides::default()
        };
        if toml::from_str::<toml::Table>(source.text).is_err() {
            return overrides;
        }
        let raw: RawPolicyParams = match toml::from_str(source.text) {
            Ok(raw) => raw,
            Err(e) => {
                problems.in_source(
                    source,
                    e.span().unwrap_or(0..0),
                    format!(
                        "params: {} (overrides are [params.\"pack/rule\"] tables of name = value)",
                        e.message().trim()
                    ),
                );
                return overrides;
            }
        };
        for (rule, table) in raw.params {
            let rule_at = source.position(rule.span().start);
            overrides.tables.push((rule.get_ref().clone(), rule_at));
            for (name, value) in table.into_inner() {
                overrides.list.push(Override {
                    rule: rule.get_ref().clone(),
                    name: name.get_ref().clone(),
                    value: ParamValue::from_toml(value.get_ref()),
                    name_at: source.position(name.span().start),
                    value_at: source.position(value.span().start),
                });
            }
        }
        overrides
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Applies the overrides to `rules` (`pack/rule` and its params). `scope` is the one pack
    /// the rule set is limited to (`riskgate check`): overrides of other packs' rules are
    /// ignored then. An override of a pack in `failed_packs` (there, but refused) is not
    /// checked: its own problems are reported.
    pub(crate) fn apply(
        &self,
        rules: &mut [(&str, &mut Params)],
        scope: Option<&str>,
        failed_packs: &[String],
        problems: &mut Problems,
    ) {
        let ignored = |rule: &str| {
            let pack = rule.split_once('/').map_or(rule, |(p, _)| p);
            scope.is_some_and(|only| only != pack) || failed_packs.iter().any(|f| f == pack)
        };
        for (rule, (line, column)) in &self.tables {
            if !ignored(rule) && !rules.iter().any(|(id, _)| id == rule) {
                problems.at(
                    &self.file,
                    *line,
                    *column,
                    format!(
                        "params.\"{rule}\": no such rule is loaded (an override names a rule as \"pack/rule\")"
                    ),
                );
            }
        }
        for o in &self.list {
            if ignored(&o.rule) {
                continue;
            }
            let Some((_, params)) = rules.iter_mut().find(|(id, _)| *id == o.rule) else {
                continue;
            };
            let result = match &o.value {
                Ok(value) => params.set(&o.name, value),
                Err(what) => Err(format!(
                    "{what} is not a param value (an integer, a float, a bool or a string)"
                )),
            };
            if let Err(why) = result {
                let (line, column) = if params.get(&o.name).is_some() {
                    o.value_at
                } else {
                    o.name_at
                };
                problems.at(
                    &self.file,
                    line,
                    column,
                    format!("params.\"{}\".{}: {why}", o.rule, o.name),
                );
            }
        }
    }
}

/// Applies the policy's overrides to the rules of the loaded packs (see [`Overrides::apply`]).
pub(crate) fn apply_overrides(
    overrides: &Overrides,
    packs: &mut [super::pack::LoadedPack],
    scope: Option<&str>,
    failed_packs: &[String],
    problems: &mut Problems,
) {
    if overrides.is_empty() {
        return;
    }
    let mut rules: Vec<(&str, &mut Params)> = packs
        .iter_mut()
        .flat_map(|pack| pack.rules.iter_mut())
        .map(|rule| (rule.id.as_str(), &mut rule.params))
        .collect();
    overrides.apply(&mut rules, scope, failed_packs, problems);
}

/// Whether a script reads the variable `params` (else the interpreter need not put it in
/// scope).
pub(crate) fn reads_params(ast: &rhai::AST) -> bool {
    let mut found = false;
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        if let Some(rhai::ASTNode::Expr(rhai::Expr::Variable(var, _, _))) = path.last() {
            if var.1.as_str() == "params" {
                found = true;
                return false;
            }
        }
        true
    });
    found
}

/// A rule of a [`super::RuleSet`] compiled with other params (what a parameter sweep runs).
pub(crate) struct RuleVariant {
    /// The rule's index in [`super::RuleSet::rules`].
    pub(crate) rule: usize,
    fast: Option<super::fastpath::FastRule>,
    params_map: Option<rhai::Dynamic>,
}

impl super::RuleSet {
    /// Rule `rule` with `params` (already conformed to the rule's types) instead of its own;
    /// `None` when there is no such rule.
    pub(crate) fn variant(&self, rule: usize, params: &Params) -> Option<RuleVariant> {
        let r = self.rules.get(rule)?;
        let fast = if super::fastpath::disabled_by_env() {
            None
        } else {
            super::fastpath::compile(&r.ast, &self.policy.limits, params)
        };
        Some(RuleVariant {
            rule,
            fast,
            params_map: r
                .params_map
                .is_some()
                .then(|| rhai::Dynamic::from_map(params.to_map())),
        })
    }

    /// Evaluates a variant as [`super::RuleSet::run_rules`] evaluates its rule. `scope` holds
    /// the Rhai `tx` map of this `tx` once an interpreted rule built it (start with `None` for
    /// each `tx`).
    pub(crate) fn run_variant(
        &self,
        variant: &RuleVariant,
        tx: &super::TxView<'_>,
        scope: &mut Option<rhai::Scope<'static>>,
    ) -> super::Outcome {
        let Some(rule) = self.rules.get(variant.rule) else {
            return super::Outcome::NoHit;
        };
        if let Some(outcome) = variant.fast.as_ref().and_then(|f| f.run(tx, rule.score)) {
            return outcome;
        }
        let scope = scope.get_or_insert_with(|| {
            let mut scope = rhai::Scope::new();
            scope.push_constant("tx", tx.to_map());
            scope
        });
        self.sandbox
            .run_with_params(&rule.ast, scope, variant.params_map.as_ref(), rule.score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "_", "min_amount_usd", "x9", "_a_1"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "A", "9x", "min-amount", "a b", "é", "aB"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn values_print_as_toml() {
        assert_eq!(ParamValue::Float(3000.0).to_string(), "3000.0");
        assert_eq!(ParamValue::Float(0.25).to_string(), "0.25");
        assert_eq!(ParamValue::Int(30).to_string(), "30");
        assert_eq!(ParamValue::Bool(true).to_string(), "true");
        assert_eq!(ParamValue::Str("a\"b".into()).to_string(), "\"a\\\"b\"");
        assert_eq!(ParamValue::Float(f64::INFINITY).to_string(), "inf");
    }

    #[test]
    fn an_integer_becomes_a_float_for_a_float_param() {
        let mut params = Params::from_pairs([("x", ParamValue::Float(1.5))]);
        assert!(params.set("x", &ParamValue::Int(3)).is_ok());
        assert_eq!(params.get("x"), Some(&ParamValue::Float(3.0)));
        assert!(params.set("x", &ParamValue::Str("3".into())).is_err());
        assert!(params.set("y", &ParamValue::Float(3.0)).is_err());
        let mut ints = Params::from_pairs([("n", ParamValue::Int(1))]);
        assert!(ints.set("n", &ParamValue::Float(2.0)).is_err());
    }
}
