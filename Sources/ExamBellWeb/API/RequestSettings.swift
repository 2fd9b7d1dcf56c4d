import ExamBellRuntime

/// The part of a node's configuration its request handlers read: sizes, budgets, the grace
/// window and the URLs they hand out; nothing else of the node's options.
package struct RequestSettings: Sendable {
    package var maxBodySize: Int
    /// Ids one request may list (people, sessions, candidates of a change).
    package var maxBatch: Int
    package var budgets: Budgets
    package var answerGraceSeconds: Int
    package var publicSocketURL: String
    package var publicWebURL: String

    package init(
        maxBodySize: Int, maxBatch: Int, budgets: Budgets, answerGraceSeconds: Int, publicSocketURL: String, publicWebURL: String
    ) {
        self.maxBodySize = maxBodySize
        self.maxBatch = maxBatch
        self.budgets = budgets
        self.answerGraceSeconds = answerGraceSeconds
        self.publicSocketURL = publicSocketURL
        self.publicWebURL = publicWebURL
    }
}
