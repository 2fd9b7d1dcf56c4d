import NIOCore

/// A command as Redis receives it: an array of bulk strings, like `["SET", "k", "v"]`.
public struct RESPCommand: Sendable, Equatable, ExpressibleByArrayLiteral, CustomStringConvertible {
    public var arguments: [String]

    public init(_ arguments: [String]) {
        self.arguments = arguments
    }

    public init(arrayLiteral elements: String...) {
        self.arguments = elements
    }

    /// Appends the command's RESP encoding: `*N\r\n` then `$len\r\narg\r\n` per argument.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*")
        buffer.writeString(String(arguments.count))
        buffer.writeStaticString("\r\n")
        for argument in arguments {
            buffer.writeStaticString("$")
            buffer.writeString(String(argument.utf8.count))
            buffer.writeStaticString("\r\n")
            buffer.writeString(argument)
            buffer.writeStaticString("\r\n")
        }
    }

    /// The command name only: arguments may hold secrets (AUTH) or large values.
    public var description: String { arguments.first ?? "" }
}
