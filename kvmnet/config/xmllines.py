"""A small, safe XML reader that keeps each element's line (ElementTree drops them; error
messages need them). No DOCTYPE, so no entity definitions: no billion laughs, no external files."""

from __future__ import annotations

from xml.parsers import expat


class XmlProblem(Exception):
    def __init__(self, line: int | None, reason: str):
        self.line, self.reason = line, reason
        super().__init__(reason)


class Element:
    """One element: tag, attributes, text, children, its line and its path from the root.
    Readers mark what they understood (`attr`, `handled`); `leftovers` lists the rest, so
    nothing in a file is ever dropped without a word."""

    def __init__(self, tag: str, attrs: dict, line: int, path: str):
        self.tag, self.attrs, self.line, self.path = tag, dict(attrs), line, path
        self.text = ""
        self.children: list[Element] = []
        self.handled = False
        self.quiet = False  # refused as a whole: nothing under it needs another word
        self.used: set[str] = set(a for a in attrs if a == "xmlns" or a.startswith("xmlns:"))

    def attr(self, name: str, default: str | None = None) -> str | None:
        self.used.add(name)
        return self.attrs.get(name, default)

    def find(self, tag: str) -> list[Element]:
        return [c for c in self.children if c.tag == tag]

    def handle(self, subtree: bool = False) -> Element:
        """Mark this element understood (with subtree=True: everything under it too)."""
        self.handled = True
        if subtree:
            self.quiet = True
            self.used.update(self.attrs)
            for child in self.children:
                child.handle(subtree=True)
        return self

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def parse(text: str) -> Element:
    """The document's root element; XmlProblem(line, reason) if it is not well-formed XML or
    declares a DOCTYPE."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Element] = []
    roots: list[Element] = []

    def refuse_doctype(*_args):
        raise XmlProblem(parser.CurrentLineNumber, "DOCTYPE declarations are refused (entities could expand without bound)")

    def start(tag, attrs):
        path = f"{stack[-1].path}/{tag}" if stack else tag
        el = Element(tag, attrs, parser.CurrentLineNumber, path)
        (stack[-1].children if stack else roots).append(el)
        stack.append(el)

    def end(_tag):
        stack.pop()

    def chars(data):
        if stack:
            stack[-1].text += data

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_doctype
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise XmlProblem(exc.lineno, f"not well-formed XML: {expat.errors.messages[exc.code]}") from None
    return roots[0]
