//! Exclusive XML Canonicalization 1.0 without comments (<https://www.w3.org/TR/xml-exc-c14n/>)
//! of one element's subtree, optionally minus one descendant (the enveloped signature), over the
//! tree the reader uses. Iterative: the depth of a document is limited before this runs, but
//! nothing here recurses anyway.

use std::collections::BTreeMap;

use roxmltree::{Node, NodeId, NodeType};

/// The qualified name of an element or attribute as written in the source (`saml:Assertion`).
pub fn element_qname<'a>(node: Node<'_, 'a>) -> &'a str {
    let text = node.document().input_text();
    let rest = text.get(node.range().start + 1..).unwrap_or("");
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    rest.get(..end).unwrap_or("")
}

fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map_or("", |(p, _)| p)
}

/// The URI `prefix` (`""`: the default namespace) is bound to at `node`, `""` when unbound.
fn bound<'a>(node: Node<'a, '_>, prefix: &str) -> &'a str {
    node.namespaces()
        .find(|ns| ns.name().unwrap_or("") == prefix)
        .map_or("", |ns| ns.uri())
}

fn escape_text(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '\r' => out.extend_from_slice(b"&#xD;"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

fn escape_attr(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '"' => out.extend_from_slice(b"&quot;"),
            '\t' => out.extend_from_slice(b"&#x9;"),
            '\n' => out.extend_from_slice(b"&#xA;"),
            '\r' => out.extend_from_slice(b"&#xD;"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Namespaces rendered by the output ancestors of the element being written: prefix → URI.
type Rendered<'a> = BTreeMap<&'a str, &'a str>;

fn start_tag<'a>(
    node: Node<'a, 'a>,
    inclusive: &[&'a str],
    context: &Rendered<'a>,
    out: &mut Vec<u8>,
) -> Rendered<'a> {
    let text = node.document().input_text();
    let qname = element_qname(node);
    let mut used: Vec<&str> = vec![prefix_of(qname)];
    let mut attrs: Vec<(&str, &str, &str, &str)> = Vec::new();
    for a in node.attributes() {
        let aq = text.get(a.range_qname()).unwrap_or(a.name());
        let p = prefix_of(aq);
        if !p.is_empty() {
            used.push(p);
        }
        attrs.push((a.namespace().unwrap_or(""), a.name(), aq, a.value()));
    }
    for p in inclusive {
        let p = if *p == "#default" { "" } else { *p };
        if p.is_empty() || node.namespaces().any(|ns| ns.name() == Some(p)) {
            used.push(p);
        }
    }
    used.sort_unstable();
    used.dedup();
    let mut rendered = context.clone();
    out.push(b'<');
    out.extend_from_slice(qname.as_bytes());
    for p in used {
        if p == "xml" {
            continue;
        }
        let uri = bound(node, p);
        let before = context.get(p).copied().unwrap_or("");
        let declare = if p.is_empty() {
            uri != before
        } else {
            !uri.is_empty() && context.get(p) != Some(&uri)
        };
        if declare {
            if p.is_empty() {
                out.extend_from_slice(b" xmlns=\"");
            } else {
                out.extend_from_slice(b" xmlns:");
                out.extend_from_slice(p.as_bytes());
                out.extend_from_slice(b"=\"");
            }
            escape_attr(uri, out);
            out.push(b'"');
            rendered.insert(p, uri);
        }
    }
    attrs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (_, _, aq, value) in attrs {
        out.push(b' ');
        out.extend_from_slice(aq.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_attr(value, out);
        out.push(b'"');
    }
    out.push(b'>');
    rendered
}

/// The canonical form of `apex` and its descendants, leaving out `exclude` (and its subtree)
/// and every comment. `inclusive` is the `InclusiveNamespaces PrefixList` (`#default` for the
/// default namespace).
pub fn canonicalize<'a>(
    apex: Node<'a, 'a>,
    exclude: Option<NodeId>,
    inclusive: &[&'a str],
) -> Vec<u8> {
    enum Step<'a> {
        Enter(Node<'a, 'a>),
        Leave(&'a str),
    }
    let mut out = Vec::with_capacity(apex.range().len());
    let mut contexts: Vec<Rendered<'a>> = vec![Rendered::new()];
    let mut steps = vec![Step::Enter(apex)];
    while let Some(step) = steps.pop() {
        match step {
            Step::Leave(qname) => {
                out.extend_from_slice(b"</");
                out.extend_from_slice(qname.as_bytes());
                out.push(b'>');
                contexts.pop();
            }
            Step::Enter(node) if Some(node.id()) == exclude => {}
            Step::Enter(node) => match node.node_type() {
                NodeType::Element => {
                    let context = contexts.last().cloned().unwrap_or_default();
                    let rendered = start_tag(node, inclusive, &context, &mut out);
                    contexts.push(rendered);
                    steps.push(Step::Leave(element_qname(node)));
                    let children: Vec<Node<'a, 'a>> = node.children().collect();
                    steps.extend(children.into_iter().rev().map(Step::Enter));
                }
                NodeType::Text => escape_text(node.text().unwrap_or(""), &mut out),
                NodeType::PI => {
                    if let Some(pi) = node.pi() {
                        out.extend_from_slice(b"<?");
                        out.extend_from_slice(pi.target.as_bytes());
                        if let Some(v) = pi.value.filter(|v| !v.is_empty()) {
                            out.push(b' ');
                            out.extend_from_slice(v.as_bytes());
                        }
                        out.extend_from_slice(b"?>");
                    }
                }
                NodeType::Comment | NodeType::Root => {}
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str, inclusive: &[&str]) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}"));
        let apex = doc
            .descendants()
            .find(|n| n.has_tag_name("apex") || n.tag_name().name() == "Apex")
            .unwrap_or_else(|| doc.root_element());
        String::from_utf8(canonicalize(apex, None, inclusive)).unwrap_or_default()
    }

    #[test]
    fn declares_only_visibly_used_namespaces_at_the_apex() {
        let xml = r#"<r xmlns:a="urn:a" xmlns:b="urn:b" xmlns="urn:d"><a:Apex z="1" b:y="2" a="3"><c>t</c><!--x--></a:Apex></r>"#;
        assert_eq!(
            c14n(xml, &[]),
            r#"<a:Apex xmlns:a="urn:a" xmlns:b="urn:b" a="3" z="1" b:y="2"><c xmlns="urn:d">t</c></a:Apex>"#
        );
    }

    #[test]
    fn inclusive_prefixes_and_escapes() {
        let xml = "<r xmlns:xs=\"urn:xs\"><Apex v=\"a&amp;&quot;&#9;&#10;&lt;\">&lt;&amp;&gt;&#13;</Apex></r>";
        assert_eq!(
            c14n(xml, &["xs"]),
            "<Apex xmlns:xs=\"urn:xs\" v=\"a&amp;&quot;&#x9;&#xA;&lt;\">&lt;&amp;&gt;&#xD;</Apex>"
        );
    }

    #[test]
    fn redeclared_default_namespace_is_undone() {
        let xml = r#"<Apex xmlns="urn:d"><x xmlns=""><y/></x></Apex>"#;
        assert_eq!(
            c14n(xml, &[]),
            r#"<Apex xmlns="urn:d"><x xmlns=""><y></y></x></Apex>"#
        );
    }
}
