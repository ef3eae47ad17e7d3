//! Written-out WGSL from one readable source. lavapipe does not unroll loops and keeps an
//! array in memory as soon as one index is not a constant, so the matrix-product kernels spell
//! out every accumulator; this expander lets `shaders/*.wgsl` say that once.
//!
//! A line `// #for v in A..B` (integer range, B exclusive) or `// #for v in a b c` (words)
//! repeats the lines up to its `// #end` once per value; loops nest. `// #for (a, b) in (x, 1)
//! (y, 2)` takes several variables at once, one tuple a pass (an entry point's name, loader and
//! block size side by side): an element is an integer if it evaluates as an expression below,
//! otherwise a word taken verbatim (`p.cin`, `k_total()`); a word with spaces or commas, or the
//! empty word, is written in quotes (`""`). `// #let N = expr` names
//! a value for the rest of the file: an integer (tile sizes, written once) or, as in a tuple, a
//! word (an entry point's name part); `// #default N = expr` does the same unless N already
//! exists (a file that includes this one may set it first).
//! `// #include NAME` stands for the lines of another shader file (unexpanded), so one source
//! can be compiled twice with different settings. After a variable exists,
//! `{expr}` is replaced by its value: a word variable by its text, otherwise integer
//! arithmetic over the integer variables and literals with `+ - * / %` and parentheses.
//! Braces around anything else (WGSL blocks) are left alone. Files without directives pass
//! through unchanged. build.rs expands every shader at compile time (the crate embeds the
//! expanded text, and `vit-hybrid shader NAME` prints it); this file has no dependencies so
//! that build.rs can include it.

use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Int(i64),
    Word(String),
}

/// Expands every `#for` block of `source`; an error names the line (1-based) and the problem.
/// `source` may not include other files.
#[allow(dead_code)] // build.rs uses expand_with only
pub fn expand(source: &str) -> Result<String, String> {
    expand_with(source, &|name| {
        Err(format!("no file `{name}` to include here"))
    })
}

/// [`expand`] with `// #include NAME` lines replaced first by `read(NAME)`'s lines (which may
/// include others, 8 deep at most); line numbers in errors count the lines after inclusion.
pub fn expand_with(
    source: &str,
    read: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let source = include(source, read, 0)?;
    let lines: Vec<&str> = source.lines().collect();
    let mut out = String::with_capacity(source.len());
    let mut vars = HashMap::new();
    let end = expand_block(&lines, 0, &mut vars, &mut out)?;
    if end != lines.len() {
        return Err(format!("line {}: `#end` without `#for`", end + 1));
    }
    Ok(out)
}

fn include(
    source: &str,
    read: &dyn Fn(&str) -> Result<String, String>,
    depth: usize,
) -> Result<String, String> {
    let mut out = String::with_capacity(source.len());
    for (i, line) in source.lines().enumerate() {
        match directive(line).and_then(|d| d.strip_prefix("include ")) {
            Some(name) => {
                if depth >= 8 {
                    return Err(format!("line {}: includes nested more than 8 deep", i + 1));
                }
                let text = read(name.trim()).map_err(|e| format!("line {}: {e}", i + 1))?;
                out.push_str(&include(&text, read, depth + 1)?);
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// The directive on a line, if any: `// #for ...` or `// #end`.
fn directive(line: &str) -> Option<&str> {
    line.trim_start()
        .strip_prefix("//")?
        .trim_start()
        .strip_prefix('#')
}

/// Expands lines from `start` up to the first unmatched `#end`; returns that line's index
/// (`lines.len()` if there is none).
fn expand_block(
    lines: &[&str],
    start: usize,
    vars: &mut HashMap<String, Value>,
    out: &mut String,
) -> Result<usize, String> {
    let mut i = start;
    while i < lines.len() {
        let line = lines[i];
        match directive(line) {
            // At the top level this is a stray `#end`, which `expand` reports.
            Some(d) if d.trim() == "end" => return Ok(i),
            Some(d) if d.starts_with("for ") => {
                let (names, passes) =
                    parse_for(d, vars).map_err(|e| format!("line {}: {e}", i + 1))?;
                let mut body_end = None;
                if passes.is_empty() {
                    // The body still has to be well formed: expand it once into nothing.
                    let mut sink = String::new();
                    for name in &names {
                        vars.insert(name.clone(), Value::Int(0));
                    }
                    body_end = Some(expand_block(lines, i + 1, vars, &mut sink)?);
                }
                for pass in passes {
                    for (name, v) in names.iter().zip(pass) {
                        vars.insert(name.clone(), v);
                    }
                    body_end = Some(expand_block(lines, i + 1, vars, out)?);
                }
                for name in &names {
                    vars.remove(name);
                }
                let e = body_end.expect("set above");
                if e >= lines.len() {
                    return Err(format!("line {}: `#for` without `#end`", i + 1));
                }
                i = e + 1;
            }
            Some(d) if d.starts_with("let ") || d.starts_with("default ") => {
                let (keyword, rest) = d.split_once(' ').expect("matched a space");
                let (name, expr) = rest
                    .split_once('=')
                    .ok_or_else(|| format!("line {}: expected `#{keyword} NAME = expr`", i + 1))?;
                let name = name.trim();
                let defined = vars.contains_key(name);
                if defined && keyword == "let" {
                    return Err(format!("line {}: `{name}` is already defined", i + 1));
                }
                if !defined {
                    let v = let_value(expr, vars).map_err(|e| format!("line {}: {e}", i + 1))?;
                    vars.insert(name.to_string(), v);
                }
                i += 1;
            }
            Some(d)
                if d.starts_with("for")
                    || d.starts_with("end")
                    || d.starts_with("let")
                    || d.starts_with("default")
                    || d.starts_with("include") =>
            {
                return Err(format!(
                    "line {}: malformed directive `{}`",
                    i + 1,
                    d.trim()
                ));
            }
            _ => {
                if vars.is_empty() {
                    out.push_str(line);
                } else {
                    out.push_str(
                        &substitute(line, vars).map_err(|e| format!("line {}: {e}", i + 1))?,
                    );
                }
                out.push('\n');
                i += 1;
            }
        }
    }
    Ok(lines.len())
}

/// A loop's variables and, per pass, their values (one each).
type Loop = (Vec<String>, Vec<Vec<Value>>);

fn parse_for(d: &str, vars: &HashMap<String, Value>) -> Result<Loop, String> {
    let rest = d["for ".len()..].trim();
    // An empty value list (`#for (a, b) in`) is a loop of no passes.
    let (names, values) = rest
        .split_once(" in ")
        .or_else(|| Some((rest.strip_suffix(" in")?, "")))
        .ok_or_else(|| format!("expected `#for NAME in ...`, got `#{d}`"))?;
    let names = names.trim();
    let tuple = names.starts_with('(');
    let names: Vec<String> = if tuple {
        names
            .strip_suffix(')')
            .ok_or_else(|| format!("expected `(NAME, ...)`, got `{names}`"))?[1..]
            .split(',')
            .map(|n| n.trim().to_string())
            .collect()
    } else {
        vec![names.to_string()]
    };
    for (k, name) in names.iter().enumerate() {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad loop variable `{name}`"));
        }
        if vars.contains_key(name) {
            return Err(format!("loop variable `{name}` shadows an outer one"));
        }
        if names[..k].contains(name) {
            return Err(format!("loop variable `{name}` appears twice"));
        }
    }
    let values = values.trim();
    if tuple {
        let passes = parse_tuples(values, names.len(), vars)?;
        return Ok((names, passes));
    }
    if let Some((a, b)) = values.split_once("..") {
        let a = eval(a, vars)?;
        let b = eval(b, vars)?;
        return Ok((names, (a..b).map(|v| vec![Value::Int(v)]).collect()));
    }
    Ok((
        names,
        values
            .split_whitespace()
            .map(|w| vec![Value::Word(w.to_string())])
            .collect(),
    ))
}

/// `(a, 1) (b, 2) ...`: tuples of `arity` elements. Commas inside quotes or parentheses
/// (`k_total()`) do not split.
fn parse_tuples(
    s: &str,
    arity: usize,
    vars: &HashMap<String, Value>,
) -> Result<Vec<Vec<Value>>, String> {
    let mut tuples = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix('(')
            .ok_or_else(|| format!("expected `(` at `{rest}`"))?;
        let (mut depth, mut quoted, mut start) = (0usize, false, 0);
        let mut elements = Vec::new();
        let mut close = None;
        for (at, c) in inner.char_indices() {
            match c {
                '"' => quoted = !quoted,
                _ if quoted => {}
                '(' => depth += 1,
                ')' if depth > 0 => depth -= 1,
                ')' => {
                    elements.push(&inner[start..at]);
                    close = Some(at);
                    break;
                }
                ',' if depth == 0 => {
                    elements.push(&inner[start..at]);
                    start = at + 1;
                }
                _ => {}
            }
        }
        let close = close.ok_or_else(|| format!("`(` without `)` in `{s}`"))?;
        if elements.len() != arity {
            return Err(format!(
                "`({})` has {} values for {arity} variables",
                &inner[..close],
                elements.len()
            ));
        }
        tuples.push(
            elements
                .into_iter()
                .map(|e| tuple_value(e, vars))
                .collect::<Result<_, _>>()?,
        );
        rest = inner[close + 1..].trim_start();
    }
    Ok(tuples)
}

/// A tuple element: `"text"` is that word; otherwise an integer if it evaluates as one, else
/// the word as written (which must then have no spaces).
fn tuple_value(e: &str, vars: &HashMap<String, Value>) -> Result<Value, String> {
    let e = e.trim();
    if let Some(w) = e.strip_prefix('"').and_then(|w| w.strip_suffix('"'))
        && !w.contains('"')
    {
        return Ok(Value::Word(w.to_string()));
    }
    if let Ok(n) = eval(e, vars) {
        return Ok(Value::Int(n));
    }
    if e.is_empty() || e.contains(char::is_whitespace) || e.contains('"') {
        return Err(format!(
            "`{e}` is neither an integer nor a word (quote a word with spaces; `\"\"` is empty)"
        ));
    }
    Ok(Value::Word(e.to_string()))
}

/// A `#let` or `#default` value: an integer expression, a quoted word, or a bare word made of
/// letters, digits and `_` (so that a mistyped expression such as `2*` is an error, not a word).
fn let_value(e: &str, vars: &HashMap<String, Value>) -> Result<Value, String> {
    let v = tuple_value(e, vars)?;
    let e = e.trim();
    if matches!(&v, Value::Word(_))
        && !e.starts_with('"')
        && !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!("`{e}` is neither an integer expression nor a word"));
    }
    Ok(v)
}

/// Replaces each `{expr}` on a line. WGSL braces (blocks) are left alone: only a brace pair
/// whose inside is a known variable or an arithmetic expression over them is replaced.
fn substitute(line: &str, vars: &HashMap<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(['{', '}']) {
            Some(close)
                if after.as_bytes()[close] == b'}' && is_expression(&after[..close], vars) =>
            {
                let expr = &after[..close];
                match vars.get(expr.trim()) {
                    Some(Value::Word(w)) => out.push_str(w),
                    _ => out.push_str(&eval(expr, vars)?.to_string()),
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `s` is a template expression rather than WGSL code between braces: arithmetic
/// whose every name is a template variable.
fn is_expression(s: &str, vars: &HashMap<String, Value>) -> bool {
    !s.trim().is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-*/%() ".contains(c))
        && tokenize(s).is_ok_and(|t| {
            t.iter().all(|t| {
                !t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    || vars.contains_key(t)
            })
        })
}

/// Integer arithmetic: `+ - * / %`, parentheses, literals and integer variables.
fn eval(s: &str, vars: &HashMap<String, Value>) -> Result<i64, String> {
    let tokens = tokenize(s)?;
    let mut pos = 0;
    let v = parse_sum(&tokens, &mut pos, vars)?;
    if pos != tokens.len() {
        return Err(format!("unexpected `{}` in `{s}`", tokens[pos]));
    }
    Ok(v)
}

fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut t = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    t.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(t);
        } else if "+-*/%()".contains(c) {
            tokens.push(c.to_string());
            chars.next();
        } else {
            return Err(format!("unexpected character `{c}` in `{s}`"));
        }
    }
    Ok(tokens)
}

fn parse_sum(t: &[String], pos: &mut usize, vars: &HashMap<String, Value>) -> Result<i64, String> {
    let mut v = parse_product(t, pos, vars)?;
    while *pos < t.len() && (t[*pos] == "+" || t[*pos] == "-") {
        let op = t[*pos].clone();
        *pos += 1;
        let r = parse_product(t, pos, vars)?;
        v = if op == "+" { v + r } else { v - r };
    }
    Ok(v)
}

fn parse_product(
    t: &[String],
    pos: &mut usize,
    vars: &HashMap<String, Value>,
) -> Result<i64, String> {
    let mut v = parse_atom(t, pos, vars)?;
    while *pos < t.len() && ["*", "/", "%"].contains(&t[*pos].as_str()) {
        let op = t[*pos].clone();
        *pos += 1;
        let r = parse_atom(t, pos, vars)?;
        v = match op.as_str() {
            "*" => v * r,
            _ if r == 0 => return Err("division by zero".into()),
            "/" => v / r,
            _ => v % r,
        };
    }
    Ok(v)
}

fn parse_atom(t: &[String], pos: &mut usize, vars: &HashMap<String, Value>) -> Result<i64, String> {
    let tok = t.get(*pos).ok_or("expression ends early")?.clone();
    *pos += 1;
    match tok.as_str() {
        "(" => {
            let v = parse_sum(t, pos, vars)?;
            if t.get(*pos).map(String::as_str) != Some(")") {
                return Err("missing `)`".into());
            }
            *pos += 1;
            Ok(v)
        }
        "-" => Ok(-parse_atom(t, pos, vars)?),
        _ => {
            if let Ok(n) = tok.parse::<i64>() {
                return Ok(n);
            }
            match vars.get(&tok) {
                Some(Value::Int(n)) => Ok(*n),
                Some(Value::Word(w)) => Err(format!("`{tok}` is the word `{w}`, not a number")),
                None => Err(format!("unknown variable `{tok}`")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{expand, expand_with};

    #[test]
    fn plain_text_passes_through() {
        let s = "fn f() { return; }\nlet a = b[{0}];\n";
        // No loop variables: nothing is substituted, braces included.
        assert_eq!(expand(s).unwrap(), s);
    }

    #[test]
    fn nested_loops_and_arithmetic() {
        let s = "// #for r in 0..2\n// #for j in 0..3\nacc[{r*3+j}] += x{r} * w{j};\n// #end\n// #end\n";
        let got = expand(s).unwrap();
        let want: String = (0..2)
            .flat_map(|r| (0..3).map(move |j| format!("acc[{}] += x{r} * w{j};\n", r * 3 + j)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn words_and_wgsl_braces() {
        let s = "// #for T in f32 u32\nfn g_{T}() -> {T} { return {T}(({1+1}) % 2); }\n// #end\n";
        assert_eq!(
            expand(s).unwrap(),
            "fn g_f32() -> f32 { return f32((2) % 2); }\nfn g_u32() -> u32 { return u32((2) % 2); }\n"
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert!(
            expand("a\n// #for i in 0..2\nb\n")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(expand("// #end\n").unwrap_err().contains("line 1"));
        assert!(expand("// #let N = 2 *\n").unwrap_err().contains("line 1"));
        assert!(expand("// #for i in 0..1\n// #for i in 0..1\n// #end\n// #end\n").is_err());
    }

    #[test]
    fn lets_name_sizes_and_unknown_names_stay() {
        let s = "// #let R = 2\nconst ROWS = {R}u;\n// #for r in 0..R\nlet v{r} = f({r * R}, {other});\n// #end\n";
        assert_eq!(
            expand(s).unwrap(),
            "const ROWS = 2u;\nlet v0 = f(0, {other});\nlet v1 = f(2, {other});\n"
        );
    }

    #[test]
    fn includes_take_the_includers_settings() {
        let read = |name: &str| match name {
            "base.wgsl" => {
                Ok("// #default S = 0\n// #for _ in 0..S\nsub();\n// #end\nx{S}\n".into())
            }
            "loop.wgsl" => Ok("// #include loop.wgsl\n".into()),
            _ => Err(format!("no {name}")),
        };
        assert_eq!(
            expand_with("// #include base.wgsl\n", &read).unwrap(),
            "x0\n"
        );
        assert_eq!(
            expand_with("// #let S = 1\n// #include base.wgsl\n", &read).unwrap(),
            "sub();\nx1\n"
        );
        let err = expand_with("a\n// #include other.wgsl\n", &read).unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("no other.wgsl"),
            "{err}"
        );
        assert!(
            expand_with("// #include loop.wgsl\n", &read)
                .unwrap_err()
                .contains("8 deep")
        );
        assert!(expand("// #include base.wgsl\n").is_err());
        // A default never replaces a value, a let never repeats one.
        assert_eq!(
            expand("// #let S = 2\n// #default S = 0\n{S}\n").unwrap(),
            "2\n"
        );
        assert!(expand("// #default S = 0\n// #let S = 1\n").is_err());
        // Words too: an including file renames what the included one writes.
        assert_eq!(
            expand("// #let W = _f16\n// #default W = \"\"\n// #default L = \"\"\nmain{W}{L}\n")
                .unwrap(),
            "main_f16\n"
        );
        assert!(
            expand("// #let W = two words\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(expand("// #let W = 2*\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn empty_range_emits_nothing() {
        assert_eq!(
            expand("a\n// #for i in 0..0\nx{i}\n// #end\nb\n").unwrap(),
            "a\nb\n"
        );
    }

    #[test]
    fn tuple_loops() {
        for (source, want) in [
            // Words and integer expressions side by side, one tuple a pass.
            (
                "// #for (NAME, F, B) in (main, scalar, 8) (main_cpu, p.k, 2 * 8)\nfn {NAME}() { load_{F}({B / 4}u); }\n// #end\n",
                "fn main() { load_scalar(2u); }\nfn main_cpu() { load_p.k(4u); }\n",
            ),
            // Quotes give the empty word and words with commas; parentheses inside an element
            // do not end the tuple; integer variables count in elements.
            (
                "// #let N = 3\n// #for (S, K) in (\"\", k_total()) (\"_a, b\", N + 1)\nmain{S} < {K}\n// #end\n",
                "main < k_total()\nmain_a, b < 4\n",
            ),
            // Nested inside a range loop, reading its variable.
            (
                "// #for i in 0..2\n// #for (C, e) in (x, i) (y, i + 1)\n{C}{e}\n// #end\n// #end\n",
                "x0\ny1\nx1\ny2\n",
            ),
            // No tuples: nothing, but the body must still be well formed.
            ("a\n// #for (p, q) in\n{p}{q}\n// #end\nb\n", "a\nb\n"),
        ] {
            assert_eq!(expand(source).unwrap(), want, "{source:?}");
        }
    }

    #[test]
    fn tuple_errors() {
        for bad in [
            "// #for (a, b) in (1, 2, 3)\n// #end\n",
            "// #for (a, b) in (1)\n// #end\n",
            "// #for (a, b) in (1, 2\n// #end\n",
            "// #for (a, a) in (1, 2)\n// #end\n",
            "// #for (a, b in (1, 2)\n// #end\n",
            "// #for (a, b) in (1, two words)\n// #end\n",
            "// #for (a, b) in (1, )\n// #end\n",
            "// #for (a, b) in 1 2\n// #end\n",
        ] {
            let e = expand(bad).unwrap_err();
            assert!(e.contains("line 1"), "{bad:?}: {e}");
        }
    }
}
