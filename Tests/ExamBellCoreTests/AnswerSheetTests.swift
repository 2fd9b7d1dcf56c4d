import ExamBellCore
import Testing

@Suite("Answer sheet", .timeLimit(.minutes(10)))
struct AnswerSheetTests {
    let items = ExamItems(choice: 3, short: 1)

    @Test("answers keyed by item number are checked against the item's kind")
    func validAnswers() throws {
        #expect(try items.validate(["1": "4", "2": "", "4": "서울 특별시"]) == [1: "4", 2: "", 4: "서울 특별시"])
    }

    @Test(
        "wrong answers are refused naming the problem",
        arguments: [
            ([:], "invalid_answers"), (["0": "1"], "invalid_item"), (["5": "1"], "invalid_item"), (["01": "1"], "invalid_item"),
            (["x": "1"], "invalid_item"), (["1": "5"], "invalid_answer"), (["1": "01"], "invalid_answer"),
            (["1": "a"], "invalid_answer"), (["4": String(repeating: "가", count: 501)], "invalid_answer"),
            (["4": "tab\there"], "invalid_answer"),
        ] as [([String: String], String)]
    )
    func invalidAnswers(_ answers: [String: String], code: String) {
        let error = #expect(throws: ExamBellError.self) { try items.validate(answers) }
        #expect(error?.status == 400)
        #expect(error?.code == code)
    }

    @Test("an exam has 1 to 200 items")
    func itemCounts() throws {
        try ExamItems(choice: 200, short: 0).validate()
        try ExamItems(choice: 0, short: 1).validate()
        for bad in [ExamItems(choice: 0, short: 0), ExamItems(choice: 150, short: 51), ExamItems(choice: -1, short: 5)] {
            #expect(throws: ExamBellError.self) { try bad.validate() }
        }
    }
}
