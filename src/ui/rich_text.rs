//! Agent text on screen: the blocks of [`markdown::parse`] built into the DOM node by node.
//! Text only ever lands in text nodes (`createTextNode`) and attributes are set one by one
//! from fixed names, so nothing the agent says can become markup.
//!
//! Built imperatively rather than through `view!`: a recursive view needs a type-erased
//! view per element kind, and that generic code cost more wasm than the rest of the panel.

use web_sys::{Document, Element};

use crate::ui::markdown::{self, Block, Inline};

/// Appends `text`, read as the Markdown subset, to `parent`.
pub fn render_into(parent: &Element, text: &str) {
    let Some(document) = parent.owner_document() else {
        return;
    };
    for block in markdown::parse(text) {
        append_block(&document, parent, block);
    }
}

fn append_block(document: &Document, parent: &Element, block: Block) {
    match block {
        Block::Paragraph(content) => {
            if let Some(paragraph) = child(document, parent, "p", "sn-md-p") {
                append_inlines(document, &paragraph, content);
            }
        }
        Block::List { start, items } => {
            let tag = if start.is_some() { "ol" } else { "ul" };
            let Some(list) = child(document, parent, tag, "sn-md-list") else {
                return;
            };
            // Only a list that does not count from 1 needs the attribute.
            if let Some(start) = start.filter(|start| *start != 1) {
                let _ = list.set_attribute("start", &start.to_string());
            }
            for item in items {
                if let Some(entry) = child(document, &list, "li", "") {
                    for block in item {
                        append_block(document, &entry, block);
                    }
                }
            }
        }
    }
}

fn append_inlines(document: &Document, parent: &Element, content: Vec<Inline>) {
    for inline in content {
        match inline {
            Inline::Text(text) => {
                let _ = parent.append_child(&document.create_text_node(&text));
            }
            Inline::Emphasis(content) => {
                if let Some(element) = child(document, parent, "em", "") {
                    append_inlines(document, &element, content);
                }
            }
            Inline::Strong(content) => {
                if let Some(element) = child(document, parent, "strong", "") {
                    append_inlines(document, &element, content);
                }
            }
            Inline::Code(code) => {
                if let Some(element) = child(document, parent, "code", "sn-md-code") {
                    element.set_text_content(Some(&code));
                }
            }
            Inline::Link { href, children } => {
                if let Some(link) = child(document, parent, "a", "sn-md-link") {
                    let _ = link.set_attribute("href", &href);
                    let _ = link.set_attribute("target", "_blank");
                    // `noopener` keeps the opened page from reaching back into the host
                    // page through `window.opener`; `noreferrer` keeps its address private.
                    let _ = link.set_attribute("rel", "noopener noreferrer");
                    append_inlines(document, &link, children);
                }
            }
            Inline::Break => {
                let _ = child(document, parent, "br", "");
            }
        }
    }
}

/// Appends a new `<tag class=…>` to `parent`.
fn child(document: &Document, parent: &Element, tag: &str, class: &str) -> Option<Element> {
    let element = document.create_element(tag).ok()?;
    if !class.is_empty() {
        element.set_class_name(class);
    }
    parent.append_child(&element).ok()?;
    Some(element)
}
