/// The part of a node's configuration its request handlers read: sizes, budgets, the grace
/// window and the URLs they hand out; nothing else of the node's options.
struct RequestSettings: Sendable {
    var maxBodySize: Int
    /// Ids one request may list (people, sessions, candidates of a change).
    var maxBatch: Int
    var budgets: Budgets
    var answerGraceSeconds: Int
    var publicSocketURL: String
    var publicWebURL: String

    init(_ configuration: ExamBellConfiguration) {
        maxBodySize = configuration.maxBodySize
        maxBatch = configuration.maxBatch
        budgets = configuration.budgets
        answerGraceSeconds = configuration.answerGraceSeconds
        publicSocketURL = configuration.publicSocketURL
        publicWebURL = configuration.publicWebURL
    }
}
