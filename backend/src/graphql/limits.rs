//! What a GraphQL document may cost, judged before async-graphql parses or validates it.
//!
//! async-graphql's validation expands every fragment spread where it is used, so a small
//! document whose fragments spread each other twice per level costs 2^levels before any
//! limit of its own is checked. Here the text is first measured (length, tokens, bracket
//! nesting: the parser recurses on brackets), then the parsed document is walked with every
//! spread expanded, counting as it goes and stopping at the first limit passed: the work is
//! bounded by the limits, whatever the document.

use async_graphql::Positioned;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// The query text; the web app's largest query is a few hundred bytes.
pub const MAX_QUERY_BYTES: usize = 32 * 1024;
/// Lexical tokens (names, punctuation, strings, numbers) of the query text.
pub const MAX_TOKENS: usize = 5_000;
/// Brackets (`{`, `(`, `[`) open at once.
pub const MAX_BRACKET_NESTING: usize = 64;
/// Fields, spreads and inline fragments visited with every spread expanded where it is used
/// (the standard introspection query needs about 400).
pub const MAX_SELECTIONS: usize = 2_000;
/// Aliased fields, counted with spreads expanded: each alias runs its resolver once more.
pub const MAX_ALIASES: usize = 64;
/// Fragments spreading fragments, one inside the other.
pub const MAX_SPREAD_NESTING: usize = 16;

/// Why a document is refused before execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CostError {
    #[error("the query is {len} bytes long; at most {MAX_QUERY_BYTES} are accepted")]
    TooLong { len: usize },
    #[error("the query has more than {MAX_TOKENS} tokens")]
    TooManyTokens,
    #[error("the query nests brackets more than {MAX_BRACKET_NESTING} deep")]
    TooNested,
    #[error("the query selects more than {MAX_SELECTIONS} fields once its fragments are expanded")]
    TooManySelections,
    #[error("the query uses more than {MAX_ALIASES} aliases once its fragments are expanded")]
    TooManyAliases,
    #[error("the query's fragments spread each other more than {MAX_SPREAD_NESTING} deep")]
    SpreadsTooNested,
    #[error("the query is nested too deep: more than {max} levels of fields")]
    TooDeep { max: usize },
}

/// Measures the text before it is parsed.
pub fn check_text(query: &str) -> Result<(), CostError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(CostError::TooLong { len: query.len() });
    }
    let bytes = query.as_bytes();
    let (mut i, mut tokens, mut nesting) = (0, 0usize, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' => i = skip_string(bytes, i),
            b'{' | b'(' | b'[' => {
                nesting += 1;
                if nesting > MAX_BRACKET_NESTING {
                    return Err(CostError::TooNested);
                }
                i += 1;
            }
            b'}' | b')' | b']' => {
                nesting = nesting.saturating_sub(1);
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'+' => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.'))
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
        tokens += 1;
        if tokens > MAX_TOKENS {
            return Err(CostError::TooManyTokens);
        }
    }
    Ok(())
}

/// The index just past the string that starts at `start` (a `"` or `"""`).
fn skip_string(bytes: &[u8], start: usize) -> usize {
    if bytes[start..].starts_with(b"\"\"\"") {
        let mut i = start + 3;
        while i < bytes.len() {
            if bytes[i..].starts_with(b"\\\"\"\"") {
                i += 4;
            } else if bytes[i..].starts_with(b"\"\"\"") {
                return i + 3;
            } else {
                i += 1;
            }
        }
        return i;
    }
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    i
}

/// What the walk of a document found within the limits.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub selections: usize,
    pub aliases: usize,
    /// `__schema` or `__type` is asked for somewhere.
    pub introspection: bool,
}

/// Walks every operation and every fragment definition with spreads expanded, refusing at
/// the first limit passed (`max_depth` levels of fields, as async-graphql counts them).
pub fn check_document(doc: &ExecutableDocument, max_depth: usize) -> Result<Cost, CostError> {
    let mut walk = Walk {
        doc,
        max_depth,
        cost: Cost::default(),
    };
    for (_, operation) in doc.operations.iter() {
        walk.selection_set(&operation.node.selection_set, 0, 0)?;
    }
    // Unused fragments are validated too.
    for fragment in doc.fragments.values() {
        walk.selection_set(&fragment.node.selection_set, 0, 1)?;
    }
    Ok(walk.cost)
}

struct Walk<'a> {
    doc: &'a ExecutableDocument,
    max_depth: usize,
    cost: Cost,
}

impl Walk<'_> {
    fn selection_set(
        &mut self,
        set: &Positioned<SelectionSet>,
        depth: usize,
        spreads: usize,
    ) -> Result<(), CostError> {
        for item in &set.node.items {
            self.cost.selections += 1;
            if self.cost.selections > MAX_SELECTIONS {
                return Err(CostError::TooManySelections);
            }
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    if field.alias.is_some() {
                        self.cost.aliases += 1;
                        if self.cost.aliases > MAX_ALIASES {
                            return Err(CostError::TooManyAliases);
                        }
                    }
                    if depth + 1 > self.max_depth {
                        return Err(CostError::TooDeep {
                            max: self.max_depth,
                        });
                    }
                    if matches!(field.name.node.as_str(), "__schema" | "__type") {
                        self.cost.introspection = true;
                    }
                    self.selection_set(&field.selection_set, depth + 1, spreads)?;
                }
                Selection::InlineFragment(fragment) => {
                    self.selection_set(&fragment.node.selection_set, depth, spreads)?;
                }
                Selection::FragmentSpread(spread) => {
                    if spreads + 1 > MAX_SPREAD_NESTING {
                        return Err(CostError::SpreadsTooNested);
                    }
                    // An unknown fragment is left to validation to report.
                    if let Some(fragment) = self.doc.fragments.get(&spread.node.fragment_name.node)
                    {
                        self.selection_set(&fragment.node.selection_set, depth, spreads + 1)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    /// `levels` fragments, each spreading the next `fan_out` times.
    fn expanding_fragments(levels: usize, fan_out: usize) -> String {
        let mut doc = String::from("query { ...F0 }\n");
        for level in 0..levels {
            let spreads = format!("...F{} ", level + 1).repeat(fan_out);
            doc.push_str(&format!("fragment F{level} on Query {{ {spreads} }}\n"));
        }
        doc.push_str(&format!("fragment F{levels} on Query {{ __typename }}\n"));
        doc
    }

    fn cost(query: &str) -> Result<Cost, CostError> {
        check_text(query)?;
        check_document(&parse_query(query).expect("parses"), 16)
    }

    #[test]
    fn expanding_fragments_are_refused_after_a_bounded_walk() {
        let started = std::time::Instant::now();
        assert_eq!(
            cost(&expanding_fragments(12, 3)),
            Err(CostError::TooManySelections)
        );
        assert_eq!(
            cost(&expanding_fragments(30, 2)),
            Err(CostError::SpreadsTooNested)
        );
        assert_eq!(
            cost(&expanding_fragments(40, 1)),
            Err(CostError::SpreadsTooNested)
        );
        // A spread of itself loops until a limit stops it.
        assert_eq!(
            cost("{ ...A } fragment A on Query { ...A }"),
            Err(CostError::SpreadsTooNested)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn ordinary_queries_pass_and_introspection_is_noticed() {
        let ordinary = cost(
            "query($a: ID!) { app(id: $a) { id name } me { ...U } } fragment U on User { id email }",
        )
        .expect("ordinary");
        assert!(!ordinary.introspection);
        assert!(ordinary.selections < 20);
        let schema = cost(r#"{ __type(name: "App") { name fields { name } } }"#).expect("small");
        assert!(schema.introspection);
        let typename = cost("{ __typename }").expect("typename");
        assert!(!typename.introspection);
    }

    #[test]
    fn text_limits_hold_whatever_the_syntax() {
        let nested = format!("{}{}", "{a".repeat(100), "}".repeat(100));
        assert_eq!(check_text(&nested), Err(CostError::TooNested));
        let list = format!("{{ a(x: {}) }}", "[".repeat(1000));
        assert_eq!(check_text(&list), Err(CostError::TooNested));
        let wide = format!("{{ {} }}", "a ".repeat(MAX_TOKENS));
        assert_eq!(check_text(&wide), Err(CostError::TooManyTokens));
        let long = " ".repeat(MAX_QUERY_BYTES + 1);
        assert!(matches!(check_text(&long), Err(CostError::TooLong { .. })));
        // Brackets inside strings and comments are not brackets.
        let quoted = format!(
            "{{ a(x: \"{}\", y: \"\"\"{}\"\"\") }} # {}",
            "{".repeat(100),
            "[".repeat(100),
            "(".repeat(100)
        );
        assert_eq!(check_text(&quoted), Ok(()));
        let aliases: String = (0..=MAX_ALIASES)
            .map(|i| format!("a{i}: __typename "))
            .collect();
        assert_eq!(
            cost(&format!("{{ {aliases} }}")),
            Err(CostError::TooManyAliases)
        );
        let deep = format!("{}{}", "{ a ".repeat(17), "}".repeat(17));
        assert_eq!(cost(&deep), Err(CostError::TooDeep { max: 16 }));
    }
}
