/// Length limits on people's text (names, titles, reasons, messages, answers), counted in
/// characters as people see them *and* in bytes.
///
/// A character (a grapheme cluster) can hold any number of combining marks: one letter with
/// 480,000 of them is "one character" of 960 KB, and a page that renders such a name freezes.
/// So a text of at most `n` characters must also fit in `4 × n` UTF-8 bytes: room for any
/// script (Korean is 3 bytes a character, most emoji 4) and a few marks, never a flood.
public enum TextLimit {
    /// Whether `text` has at most `characters` characters and `4 × characters` UTF-8 bytes.
    public static func fits(_ text: some StringProtocol, characters: Int) -> Bool {
        text.utf8.count <= 4 * characters && text.count <= characters
    }
}
