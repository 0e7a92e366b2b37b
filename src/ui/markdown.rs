//! The small, safe subset of Markdown the widget renders in agent turns: paragraphs, line
//! breaks, `*emphasis*` / `_emphasis_`, `**strong**`, `` `code` ``, bullet and numbered
//! lists, and links (`[text](url)`, `<url>`) to http(s) URLs only.
//!
//! [`parse`] turns text into plain data ([`Block`], [`Inline`]) that the view builds DOM
//! nodes from; nothing is ever handed to the browser as HTML. Everything outside the subset
//! stays visible as the text it is: raw HTML, images, links to other schemes, headings,
//! quotes and code fences. User turns are never parsed: what visitors type is shown as typed.
//!
//! Why not pulldown-cmark: measured in the release build, it added about 78 KB gzip to the
//! wasm (entity tables, Unicode case folding, the whole of CommonMark), twice the budget for
//! a subset this small. Every search here is bounded or remembered, so hostile input costs
//! linear time, and nesting is capped, so it cannot exhaust the stack of the recursive view.

/// A block of agent text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Paragraph(Vec<Inline>),
    /// A list; `start` is the first number of a numbered list, `None` for bullets.
    List {
        start: Option<u64>,
        items: Vec<Vec<Block>>,
    },
}

/// Text inside a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inline {
    Text(String),
    Emphasis(Vec<Inline>),
    Strong(Vec<Inline>),
    /// Inline code: shown as styled plain text.
    Code(String),
    /// A link whose `href` passed [`safe_href`].
    Link {
        href: String,
        children: Vec<Inline>,
    },
    /// A line break: agents write single newlines to mean one.
    Break,
}

/// Deeper nesting of lists, emphasis or links is read as text.
const MAX_DEPTH: usize = 8;
/// Link destinations longer than this are not links (and bound the scan for one).
const MAX_URL: usize = 2048;

/// The link target if it is an absolute http or https URL; anything else (`javascript:`,
/// `data:`, relative paths that would resolve against the host page) is refused.
pub fn safe_href(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once(':')?;
    let allowed = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    // A host must follow, and nothing a browser would strip or reinterpret may hide in it.
    let well_formed = rest.len() > 2
        && rest.starts_with("//")
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    (allowed && well_formed).then_some(url)
}

/// Parses agent text into the supported subset.
pub fn parse(source: &str) -> Vec<Block> {
    let mut builder = Blocks::default();
    for line in source.lines() {
        builder.line(line);
    }
    builder.finish()
}

/// A list still taking items.
#[derive(Debug)]
struct OpenList {
    /// Columns before the marker.
    indent: usize,
    /// Columns before the text of its last item: deeper text after a blank line belongs
    /// to that item.
    content_indent: usize,
    ordered: bool,
    start: Option<u64>,
    items: Vec<Vec<Block>>,
}

/// The block structure, built line by line.
#[derive(Debug, Default)]
struct Blocks {
    done: Vec<Block>,
    /// Open lists, outermost first; each nested one belongs to its parent's last item.
    lists: Vec<OpenList>,
    /// The lines of the paragraph being read; it belongs to the innermost list's last item,
    /// or to the top level when no list is open.
    paragraph: Vec<String>,
    after_blank: bool,
}

/// A line that starts a list item.
struct ItemLine<'a> {
    indent: usize,
    content_indent: usize,
    number: Option<u64>,
    text: &'a str,
}

impl Blocks {
    fn line(&mut self, line: &str) {
        if line.trim().is_empty() {
            self.close_paragraph();
            self.after_blank = true;
            return;
        }
        if let Some(item) = item_line(line) {
            self.close_paragraph();
            self.item(&item);
            if !item.text.is_empty() {
                self.paragraph.push(item.text.to_owned());
            }
        } else {
            // Without a blank line before it, text continues the paragraph it follows. After
            // one, it belongs to the innermost item it is indented under, if any.
            if self.after_blank {
                let indent = indent_of(line);
                while self
                    .lists
                    .last()
                    .is_some_and(|list| indent < list.content_indent)
                {
                    self.close_top_list();
                }
            }
            self.paragraph.push(line.trim().to_owned());
        }
        self.after_blank = false;
    }

    fn item(&mut self, item: &ItemLine<'_>) {
        self.close_lists_deeper_than(Some(item.indent));
        let ordered = item.number.is_some();
        let nests = match self.lists.last() {
            Some(list) if list.indent == item.indent && list.ordered == ordered => false,
            Some(list) if list.indent == item.indent => {
                // Bullets after numbers (or the reverse) start a new list.
                self.close_top_list();
                self.lists.len() < MAX_DEPTH
            }
            _ => self.lists.len() < MAX_DEPTH,
        };
        if nests || self.lists.is_empty() {
            self.lists.push(OpenList {
                indent: item.indent,
                content_indent: item.content_indent,
                ordered,
                start: item.number,
                items: vec![Vec::new()],
            });
        } else if let Some(list) = self.lists.last_mut() {
            // The same list, or a list too deep to nest: the item joins the innermost one.
            list.content_indent = item.content_indent;
            list.items.push(Vec::new());
        }
    }

    /// Closes the lists indented deeper than `indent` (all of them for `None`).
    fn close_lists_deeper_than(&mut self, indent: Option<usize>) {
        while self
            .lists
            .last()
            .is_some_and(|list| indent.is_none_or(|indent| list.indent > indent))
        {
            self.close_top_list();
        }
    }

    fn close_top_list(&mut self) {
        if let Some(list) = self.lists.pop() {
            self.push(Block::List {
                start: list.start,
                items: list.items,
            });
        }
    }

    fn close_paragraph(&mut self) {
        if self.paragraph.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.paragraph).join("\n");
        self.push(Block::Paragraph(parse_inlines(&text)));
    }

    fn push(&mut self, block: Block) {
        match self.lists.last_mut().and_then(|list| list.items.last_mut()) {
            Some(item) => item.push(block),
            None => self.done.push(block),
        }
    }

    fn finish(mut self) -> Vec<Block> {
        self.close_paragraph();
        self.close_lists_deeper_than(None);
        self.done
    }
}

/// Columns of leading whitespace, a tab counting as four.
fn indent_of(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

/// `- item`, `* item`, `+ item`, `1. item` or `1) item`, with the marker's indentation.
fn item_line(line: &str) -> Option<ItemLine<'_>> {
    let indent = indent_of(line);
    let rest = line.trim_start_matches([' ', '\t']);
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (number, marker_len) = if digits == 0 {
        if !rest.starts_with(['-', '*', '+']) {
            return None;
        }
        (None, 1)
    } else {
        // Nine digits at most, as CommonMark: longer numbers are text, not list numbers.
        if digits > 9 || !rest[digits..].starts_with(['.', ')']) {
            return None;
        }
        (rest[..digits].parse().ok(), digits + 1)
    };
    let after = &rest[marker_len..];
    if !after.is_empty() && !after.starts_with([' ', '\t']) {
        return None;
    }
    let text = after.trim();
    Some(ItemLine {
        indent,
        content_indent: indent + marker_len + 1,
        number,
        text,
    })
}

/// Parses one paragraph's text (lines joined by `\n`) into inlines.
fn parse_inlines(text: &str) -> Vec<Inline> {
    let parser = Inlines {
        text,
        brackets: match_brackets(text),
    };
    parser.parse(0, text.len(), 0, true)
}

/// Each unescaped `[` with the index of its matching `]`, found in one pass and sorted by
/// the `[` for lookup. (Sorted pairs rather than a hash map: the same speed here, and the
/// widget's wasm carries no hasher for it.)
fn match_brackets(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut open = Vec::new();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' => open.push(i),
            b']' => {
                if let Some(start) = open.pop() {
                    pairs.push((start, i));
                }
            }
            _ => {}
        }
        i += 1;
    }
    pairs.sort_unstable();
    pairs
}

/// Inline parsing over byte ranges of one paragraph. Every delimiter is ASCII, so every
/// index the parser cuts at is a character boundary.
struct Inlines<'a> {
    text: &'a str,
    brackets: Vec<(usize, usize)>,
}

/// Inlines being collected; adjacent text is one node.
#[derive(Default)]
struct Out(Vec<Inline>);

impl Out {
    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some(Inline::Text(before)) => before.push_str(text),
            _ => self.0.push(Inline::Text(text.to_owned())),
        }
    }

    fn push(&mut self, inline: Inline) {
        match inline {
            Inline::Text(text) => self.text(&text),
            inline => self.0.push(inline),
        }
    }
}

/// Closing delimiters already searched for in vain, by delimiter and run length: a search
/// from a later start cannot succeed either, which keeps unmatched openers linear. Few
/// keys ever occur (three emphasis runs per delimiter, a handful of backtick runs), so a
/// list does.
#[derive(Default)]
struct Misses(Vec<((u8, usize), usize)>);

impl Misses {
    fn known(&self, key: (u8, usize), from: usize) -> bool {
        self.0
            .iter()
            .any(|(known, missed)| *known == key && from >= *missed)
    }

    fn record(&mut self, key: (u8, usize), from: usize) {
        match self.0.iter_mut().find(|(known, _)| *known == key) {
            Some((_, missed)) => *missed = (*missed).min(from),
            None => self.0.push((key, from)),
        }
    }
}

impl Inlines<'_> {
    fn byte(&self, index: usize) -> Option<u8> {
        self.text.as_bytes().get(index).copied()
    }

    /// The length of the run of `delimiter` starting at `index`, within `end`.
    fn run(&self, index: usize, end: usize, delimiter: u8) -> usize {
        self.text.as_bytes()[index..end]
            .iter()
            .take_while(|b| **b == delimiter)
            .count()
    }

    fn parse(&self, start: usize, end: usize, depth: usize, links: bool) -> Vec<Inline> {
        let mut out = Out::default();
        let mut misses = Misses::default();
        // Where the next `>` is (or `end`), found once for every `<` before it.
        let mut next_angle = None;
        let mut literal = start;
        let mut i = start;
        while i < end {
            let byte = self.text.as_bytes()[i];
            // Each arm either consumes a construct (after flushing the literal text before
            // it) or steps over what turned out to be text.
            let consumed: Option<(Inline, usize)> = match byte {
                b'\\'
                    if self.byte(i + 1).is_some_and(|b| b.is_ascii_punctuation())
                        && i + 1 < end =>
                {
                    Some((Inline::Text(self.text[i + 1..i + 2].to_owned()), i + 2))
                }
                b'\n' => Some((Inline::Break, i + 1)),
                b'`' => {
                    let run = self.run(i, end, b'`');
                    match self.code_close(i + run, end, run, &mut misses) {
                        Some(close) => Some((code(&self.text[i + run..close]), close + run)),
                        None => {
                            i += run;
                            continue;
                        }
                    }
                }
                b'*' | b'_' => {
                    let run = self.run(i, end, byte);
                    match self.emphasis(i, end, byte, run, depth, links, &mut misses) {
                        Some(found) => Some(found),
                        None => {
                            i += run;
                            continue;
                        }
                    }
                }
                // Images are text: the whole `![alt](src)` stays as written.
                b'!' if self.byte(i + 1) == Some(b'[') => self
                    .link_at(i + 1, end)
                    .map(|(_, _, after)| (Inline::Text(self.text[i..after].to_owned()), after)),
                b'[' if links && depth < MAX_DEPTH => {
                    self.link_at(i, end)
                        .map(|(close, url, after)| match safe_href(url) {
                            Some(href) => (
                                Inline::Link {
                                    href: href.to_owned(),
                                    children: self.parse(i + 1, close, depth + 1, false),
                                },
                                after,
                            ),
                            // A refused link shows its source, so nothing is hidden.
                            None => (Inline::Text(self.text[i..after].to_owned()), after),
                        })
                }
                b'<' if links => self.autolink(i, end, &mut next_angle),
                _ => None,
            };
            match consumed {
                Some((inline, next)) => {
                    out.text(&self.text[literal..i]);
                    out.push(inline);
                    i = next;
                    literal = next;
                }
                None => i += 1,
            }
        }
        out.text(&self.text[literal..end]);
        out.0
    }

    /// `*em*`, `_em_`, `**strong**`, `__strong__` or `***both***` opening at `index`.
    #[allow(clippy::too_many_arguments)]
    fn emphasis(
        &self,
        index: usize,
        end: usize,
        delimiter: u8,
        run: usize,
        depth: usize,
        links: bool,
        misses: &mut Misses,
    ) -> Option<(Inline, usize)> {
        let after = self.byte(index + run).filter(|_| index + run < end);
        let opens = run <= 3
            && depth < MAX_DEPTH
            && after.is_some_and(|b| !b.is_ascii_whitespace())
            // `snake_case_names` are not emphasis.
            && (delimiter == b'*' || !index.checked_sub(1).and_then(|i| self.byte(i)).is_some_and(is_word));
        if !opens {
            return None;
        }
        let close = self.emphasis_close(index + run, end, delimiter, run, misses)?;
        let children = self.parse(index + run, close, depth + 1, links);
        let inline = match run {
            1 => Inline::Emphasis(children),
            2 => Inline::Strong(children),
            _ => Inline::Strong(vec![Inline::Emphasis(children)]),
        };
        Some((inline, close + run))
    }

    /// The start of the run closing an emphasis opened before `from`.
    fn emphasis_close(
        &self,
        from: usize,
        end: usize,
        delimiter: u8,
        run: usize,
        misses: &mut Misses,
    ) -> Option<usize> {
        let key = (delimiter, run);
        if misses.known(key, from) {
            return None;
        }
        let bytes = self.text.as_bytes();
        let mut i = from;
        while i < end {
            match bytes[i] {
                b'\\' => i += 2,
                b'`' => {
                    // Code spans bind tighter than emphasis: a `*` inside one closes nothing.
                    let ticks = self.run(i, end, b'`');
                    i = match self.code_close(i + ticks, end, ticks, misses) {
                        Some(close) => close + ticks,
                        None => i + ticks,
                    };
                }
                b if b == delimiter => {
                    let found = self.run(i, end, delimiter);
                    let before = bytes[i - 1];
                    let next = self.byte(i + found).filter(|_| i + found < end);
                    if found == run
                        && i > from
                        && !before.is_ascii_whitespace()
                        && (delimiter == b'*' || !next.is_some_and(is_word))
                    {
                        return Some(i);
                    }
                    i += found;
                }
                _ => i += 1,
            }
        }
        misses.record(key, from);
        None
    }

    /// The start of the backtick run of exactly `run` closing a code span.
    fn code_close(
        &self,
        from: usize,
        end: usize,
        run: usize,
        misses: &mut Misses,
    ) -> Option<usize> {
        let key = (b'`', run);
        if misses.known(key, from) {
            return None;
        }
        let mut i = from;
        while i < end {
            if self.text.as_bytes()[i] == b'`' {
                let found = self.run(i, end, b'`');
                if found == run {
                    return Some(i);
                }
                i += found;
            } else {
                i += 1;
            }
        }
        misses.record(key, from);
        None
    }

    /// `[text](url)` or `[text](url "title")` at `index`: the closing bracket, the URL and
    /// the index after the closing parenthesis.
    fn link_at(&self, index: usize, end: usize) -> Option<(usize, &str, usize)> {
        let found = self
            .brackets
            .binary_search_by_key(&index, |(open, _)| *open)
            .ok()?;
        let close = self.brackets[found].1;
        if close + 1 >= end || self.byte(close + 1) != Some(b'(') {
            return None;
        }
        let bytes = self.text.as_bytes();
        let limit = end.min(close + 2 + MAX_URL);
        let mut i = close + 2;
        while i < limit && bytes[i] == b' ' {
            i += 1;
        }
        let url_start = i;
        let mut depth = 0usize;
        while i < limit {
            match bytes[i] {
                b'\\' => i += 1,
                b'(' => depth += 1,
                b')' if depth == 0 => break,
                b')' => depth -= 1,
                // Not in the URLs agents write; stopping here keeps a run of `[a](` linear.
                b'[' | b']' | b'<' | b'>' => break,
                b if b.is_ascii_whitespace() => break,
                _ => {}
            }
            i += 1;
        }
        let url = self.text.get(url_start..i.min(limit))?;
        while i < limit && bytes[i] == b' ' {
            i += 1;
        }
        // An optional title in quotes, which the widget does not show.
        if i < limit && (bytes[i] == b'"' || bytes[i] == b'\'') {
            let quote = bytes[i];
            i += 1 + bytes[i + 1..limit].iter().position(|b| *b == quote)? + 1;
            while i < limit && bytes[i] == b' ' {
                i += 1;
            }
        }
        (i < limit && bytes[i] == b')').then_some((close, url, i + 1))
    }

    /// `<https://…>`: a link if the URL is allowed, otherwise text.
    fn autolink(
        &self,
        index: usize,
        end: usize,
        next_angle: &mut Option<usize>,
    ) -> Option<(Inline, usize)> {
        let close = match *next_angle {
            Some(close) if close > index => close,
            _ => {
                let bytes = &self.text.as_bytes()[index + 1..end];
                let close =
                    index + 1 + bytes.iter().position(|b| *b == b'>').unwrap_or(bytes.len());
                *next_angle = Some(close);
                close
            }
        };
        if close >= end || close - index > MAX_URL {
            return None;
        }
        let url = &self.text[index + 1..close];
        let href = safe_href(url)?;
        Some((
            Inline::Link {
                href: href.to_owned(),
                children: vec![Inline::Text(url.to_owned())],
            },
            close + 1,
        ))
    }
}

/// A code span's content: one space trimmed from each side when both have one, as
/// CommonMark does, so `` ` `code` ` `` can show backticks. Line breaks are kept (a fence
/// written as a code span of three backticks keeps its lines), and so are the lines of
/// code; the newline after the opening and before the closing run are dropped.
fn code(content: &str) -> Inline {
    let content = if let Some(inner) = content
        .strip_prefix('\n')
        .and_then(|c| c.strip_suffix('\n'))
    {
        inner
    } else {
        match content.strip_prefix(' ').and_then(|c| c.strip_suffix(' ')) {
            Some(inner) if !inner.trim().is_empty() => inner,
            _ => content,
        }
    };
    Inline::Code(content.to_owned())
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Inline {
        Inline::Text(s.into())
    }

    fn para(inlines: Vec<Inline>) -> Block {
        Block::Paragraph(inlines)
    }

    /// Every text the blocks show, joined, for assertions about what stays visible.
    fn visible(blocks: &[Block]) -> String {
        fn inline(out: &mut String, node: &Inline) {
            match node {
                Inline::Text(t) | Inline::Code(t) => out.push_str(t),
                Inline::Emphasis(c) | Inline::Strong(c) | Inline::Link { children: c, .. } => {
                    c.iter().for_each(|i| inline(out, i))
                }
                Inline::Break => out.push('\n'),
            }
        }
        let mut out = String::new();
        for block in blocks {
            match block {
                Block::Paragraph(inlines) => inlines.iter().for_each(|i| inline(&mut out, i)),
                Block::List { items, .. } => items.iter().for_each(|item| out += &visible(item)),
            }
            out.push('\n');
        }
        out
    }

    fn links(blocks: &[Block]) -> Vec<String> {
        fn inline(out: &mut Vec<String>, i: &Inline) {
            match i {
                Inline::Link { href, children } => {
                    out.push(href.clone());
                    children.iter().for_each(|c| inline(out, c));
                }
                Inline::Emphasis(c) | Inline::Strong(c) => c.iter().for_each(|i| inline(out, i)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for block in blocks {
            match block {
                Block::Paragraph(inlines) => inlines.iter().for_each(|i| inline(&mut out, i)),
                Block::List { items, .. } => items.iter().for_each(|item| out.extend(links(item))),
            }
        }
        out
    }

    fn depth(blocks: &[Block]) -> usize {
        blocks
            .iter()
            .map(|block| match block {
                Block::List { items, .. } => {
                    1 + items.iter().map(|item| depth(item)).max().unwrap_or(0)
                }
                Block::Paragraph(_) => 0,
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn plain_text_is_one_paragraph() {
        assert_eq!(
            parse("Hi! I'm Ava. How can I help you today?"),
            [para(vec![text("Hi! I'm Ava. How can I help you today?")])]
        );
    }

    #[test]
    fn emphasis_strong_and_code() {
        assert_eq!(
            parse("*a* _b_ **c** __d__ ***e*** `f <g>`"),
            [para(vec![
                Inline::Emphasis(vec![text("a")]),
                text(" "),
                Inline::Emphasis(vec![text("b")]),
                text(" "),
                Inline::Strong(vec![text("c")]),
                text(" "),
                Inline::Strong(vec![text("d")]),
                text(" "),
                Inline::Strong(vec![Inline::Emphasis(vec![text("e")])]),
                text(" "),
                Inline::Code("f <g>".into()),
            ])]
        );
    }

    #[test]
    fn emphasis_nests_and_spans_lines() {
        assert_eq!(
            parse("**a *b*\nc**"),
            [para(vec![Inline::Strong(vec![
                text("a "),
                Inline::Emphasis(vec![text("b")]),
                Inline::Break,
                text("c"),
            ])])]
        );
    }

    #[test]
    fn stray_delimiters_stay_text() {
        for source in [
            "2 * 3 * 4",
            "snake_case_names",
            "a ** b",
            "*open only",
            "close only*",
            "`unclosed code",
            "\\*escaped\\*",
            "mixed *delims_",
        ] {
            let blocks = parse(source);
            let shown = visible(&blocks);
            let expected = source.replace('\\', "");
            assert_eq!(shown.trim_end(), expected, "{source}: {blocks:?}");
            assert_eq!(blocks, [para(vec![text(&expected)])], "{source}");
        }
    }

    #[test]
    fn code_spans_keep_their_content_literal() {
        assert_eq!(
            parse("`*not em*` and ``a ` b``"),
            [para(vec![
                Inline::Code("*not em*".into()),
                text(" and "),
                Inline::Code("a ` b".into()),
            ])]
        );
        assert_eq!(
            parse("*see `a*b` here*"),
            [para(vec![Inline::Emphasis(vec![
                text("see "),
                Inline::Code("a*b".into()),
                text(" here"),
            ])])]
        );
    }

    #[test]
    fn paragraphs_and_line_breaks() {
        assert_eq!(
            parse("one\ntwo\n\nthree\r\n"),
            [
                para(vec![text("one"), Inline::Break, text("two")]),
                para(vec![text("three")]),
            ]
        );
    }

    #[test]
    fn bullet_and_numbered_lists() {
        assert_eq!(
            parse("Options:\n- one\n* **two**\n\n3. three\n4) four\n\nDone."),
            [
                para(vec![text("Options:")]),
                Block::List {
                    start: None,
                    items: vec![
                        vec![para(vec![text("one")])],
                        vec![para(vec![Inline::Strong(vec![text("two")])])],
                    ],
                },
                Block::List {
                    start: Some(3),
                    items: vec![
                        vec![para(vec![text("three")])],
                        vec![para(vec![text("four")])]
                    ],
                },
                para(vec![text("Done.")]),
            ]
        );
    }

    #[test]
    fn nested_lists_and_continuations() {
        let blocks = parse("- a\n  continued\n  - b\n\n  more of a\n- c");
        assert_eq!(
            blocks,
            [Block::List {
                start: None,
                items: vec![
                    vec![
                        para(vec![text("a"), Inline::Break, text("continued")]),
                        Block::List {
                            start: None,
                            items: vec![vec![para(vec![text("b")])]],
                        },
                        para(vec![text("more of a")]),
                    ],
                    vec![para(vec![text("c")])],
                ],
            }]
        );
    }

    #[test]
    fn not_every_dash_or_number_is_a_list() {
        for source in ["-not a list", "---", "1.5 litres", "1234567890. too long"] {
            let blocks = parse(source);
            assert_eq!(blocks, [para(vec![text(source)])], "{source}");
        }
    }

    #[test]
    fn http_and_https_links_are_links() {
        assert_eq!(
            parse(
                "See [the *docs*](https://example.com/a_(b)?c=1 \"Docs\") or <http://example.org>."
            ),
            [para(vec![
                text("See "),
                Inline::Link {
                    href: "https://example.com/a_(b)?c=1".into(),
                    children: vec![text("the "), Inline::Emphasis(vec![text("docs")])],
                },
                text(" or "),
                Inline::Link {
                    href: "http://example.org".into(),
                    children: vec![text("http://example.org")],
                },
                text("."),
            ])]
        );
    }

    #[test]
    fn script_and_other_schemes_stay_text() {
        for source in [
            "[x](javascript:alert(1))",
            "[x](JavaScript:alert(1))",
            "[x](  javascript:alert(1))",
            "[x](data:text/html,<script>alert(1)</script>)",
            "[x](vbscript:msgbox)",
            "[x](//evil.example)",
            "[x](/relative)",
            "[x](mailto:a@b.c)",
            "<javascript:alert(1)>",
            "[x](java&#115;cript:alert(1))",
            "[x](https:evil)",
            "[x](https://)",
            "[x](java\tscript:alert(1))",
        ] {
            let blocks = parse(source);
            assert!(
                links(&blocks).is_empty(),
                "{source} made a link: {blocks:?}"
            );
            assert_eq!(
                visible(&blocks).trim_end(),
                source,
                "{source} is shown as written"
            );
        }
    }

    #[test]
    fn raw_html_and_images_are_text() {
        let source =
            "<img src=x onerror=alert(1)> and <script>alert(1)</script> ![cat](https://x/cat.png)";
        let blocks = parse(source);
        assert_eq!(blocks, [para(vec![text(source)])]);
        let block = "<div onclick=\"x()\">\nhello\n</div>";
        assert_eq!(visible(&parse(block)).trim_end(), block);
    }

    #[test]
    fn headings_and_quotes_are_text_and_fences_code() {
        assert_eq!(
            parse("# Title\n\n> quoted *x*\n\n```\nlet a = 1;\nlet b = 2;\n```"),
            [
                para(vec![text("# Title")]),
                para(vec![text("> quoted "), Inline::Emphasis(vec![text("x")])]),
                para(vec![Inline::Code("let a = 1;\nlet b = 2;".into())]),
            ]
        );
    }

    #[test]
    fn a_refused_link_shows_its_source_once_even_with_nested_brackets() {
        let source = "[a [b] ![c](https://x/c.png)](javascript:alert(1)) after";
        let blocks = parse(source);
        assert!(links(&blocks).is_empty(), "{blocks:?}");
        assert_eq!(visible(&blocks).trim_end(), source);
    }

    #[test]
    fn nested_brackets_in_an_allowed_link_and_no_link_in_a_link() {
        let blocks = parse("[a [b] c](https://example.com)");
        assert_eq!(links(&blocks), ["https://example.com"]);
        assert_eq!(visible(&blocks).trim_end(), "a [b] c");
        let blocks = parse("[outer [inner](https://b.example)](https://a.example)");
        assert_eq!(links(&blocks), ["https://a.example"], "{blocks:?}");
        assert_eq!(
            visible(&blocks).trim_end(),
            "outer [inner](https://b.example)"
        );
    }

    #[test]
    fn unbalanced_markup_stays_text() {
        for source in [
            "**bold [link](https://x.y",
            "[a](https://x.y",
            "[a]",
            "[a] (https://x.y)",
        ] {
            let blocks = parse(source);
            assert!(links(&blocks).is_empty(), "{source}");
            assert_eq!(visible(&blocks).trim_end(), source);
        }
    }

    #[test]
    fn reference_links_are_not_supported_and_stay_text() {
        let source = "[x][1]\n\n[1]: https://example.com";
        let blocks = parse(source);
        assert!(links(&blocks).is_empty());
        assert!(visible(&blocks).contains("[1]: https://example.com"));
    }

    #[test]
    fn deep_nesting_is_capped() {
        let stairs: String = (0..200)
            .map(|level| format!("{}- level {level}\n", " ".repeat(level * 2)))
            .collect();
        let blocks = parse(&stairs);
        assert!(depth(&blocks) <= MAX_DEPTH, "{}", depth(&blocks));
        assert!(visible(&blocks).contains("level 199"), "nothing is lost");
        assert_eq!(depth(&parse(&("- ".repeat(5000) + "deep"))), 1);
        let emphasis = "*a ".repeat(50) + &" a*".repeat(50);
        assert!(visible(&parse(&emphasis)).contains('a'));
        let brackets = "[".repeat(100) + "x" + &"](https://a.example)".repeat(100);
        assert!(visible(&parse(&brackets)).contains('x'));
    }

    #[test]
    fn hostile_input_takes_linear_time() {
        // Each of these would make a naive scanner quadratic; a debug build of a quadratic
        // parser takes minutes on them, this one milliseconds.
        let size = 200_000;
        for source in [
            "*a ".repeat(size / 3),
            "_a ".repeat(size / 3),
            "`` `".repeat(size / 4),
            "[".repeat(size),
            "[a](".repeat(size / 4),
            "<".repeat(size),
            "**".repeat(size / 2),
            "- ".repeat(size / 2),
            "\\".repeat(size),
        ] {
            let started = std::time::Instant::now();
            let blocks = parse(&source);
            assert!(!blocks.is_empty());
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{:?}…",
                &source[..8]
            );
        }
    }

    #[test]
    fn non_ascii_text_is_kept_whole() {
        assert_eq!(
            parse("**مرحبا** — _grüß_ 👋 [دليل](https://example.com/ü)"),
            [para(vec![
                Inline::Strong(vec![text("مرحبا")]),
                text(" — "),
                Inline::Emphasis(vec![text("grüß")]),
                text(" 👋 "),
                Inline::Link {
                    href: "https://example.com/ü".into(),
                    children: vec![text("دليل")],
                },
            ])]
        );
    }

    #[test]
    fn empty_input_is_nothing() {
        assert!(parse("").is_empty());
        assert!(parse("\n\n  \n").is_empty());
    }
}
