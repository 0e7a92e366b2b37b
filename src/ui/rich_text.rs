//! Agent text on screen: the blocks of [`markdown::parse`] as DOM nodes built one by one.
//! Text always lands in text nodes, so nothing the agent says can become markup.

use leptos::prelude::*;

use crate::ui::markdown::{self, Block, Inline};

/// An agent turn's text in the Markdown subset.
pub fn rich_text(text: &str) -> Vec<AnyView> {
    blocks(markdown::parse(text))
}

fn blocks(blocks: Vec<Block>) -> Vec<AnyView> {
    blocks.into_iter().map(block).collect()
}

fn block(block: Block) -> AnyView {
    match block {
        Block::Paragraph(content) => view! { <p class="sn-md-p">{inlines(content)}</p> }.into_any(),
        Block::List { start: None, items } => view! {
            <ul class="sn-md-list">{list_items(items)}</ul>
        }
        .into_any(),
        Block::List {
            start: Some(start),
            items,
        } => view! {
            // Only a list that does not count from 1 needs the attribute.
            <ol class="sn-md-list" start=(start != 1).then(|| start.to_string())>
                {list_items(items)}
            </ol>
        }
        .into_any(),
    }
}

fn list_items(items: Vec<Vec<Block>>) -> Vec<AnyView> {
    items
        .into_iter()
        .map(|item| view! { <li>{blocks(item)}</li> }.into_any())
        .collect()
}

fn inlines(content: Vec<Inline>) -> Vec<AnyView> {
    content.into_iter().map(inline).collect()
}

fn inline(inline: Inline) -> AnyView {
    match inline {
        Inline::Text(text) => text.into_any(),
        Inline::Emphasis(content) => view! { <em>{inlines(content)}</em> }.into_any(),
        Inline::Strong(content) => view! { <strong>{inlines(content)}</strong> }.into_any(),
        Inline::Code(code) => view! { <code class="sn-md-code">{code}</code> }.into_any(),
        // `noopener` keeps the opened page from reaching back into the host page through
        // `window.opener`; `noreferrer` keeps the host page's address to itself.
        Inline::Link { href, children } => view! {
            <a class="sn-md-link" href=href target="_blank" rel="noopener noreferrer">
                {inlines(children)}
            </a>
        }
        .into_any(),
        Inline::Break => view! { <br /> }.into_any(),
    }
}
