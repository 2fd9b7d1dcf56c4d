import NIOCore
import Synchronization

/// The browsers' keep-alive: one timer per event loop walks the browsers on that loop every
/// ping interval, instead of a repeated task per browser (19,000 entries in the loops'
/// heaps of scheduled tasks, each scheduled again after every tick and cancelled as its
/// browser leaves).
///
/// A round lives on its loop and is touched only there; its timer starts with its first
/// browser and stops with its last, so a node without browsers schedules nothing.
final package class PingRounds: Sendable {
    private let interval: TimeAmount
    private let rounds = Mutex<[ObjectIdentifier: NIOLoopBound<Round>]>([:])

    package init(interval: TimeAmount) {
        self.interval = interval
    }

    /// Adds `handler` to the round of `loop` (on `loop`): it is pinged at that round's next tick
    /// and every interval after.
    func join(_ handler: BrowserHandler, on loop: any EventLoop) {
        let round = self.round(on: loop)
        round.value.browsers[ObjectIdentifier(handler)] = handler
        if round.value.timer == nil {
            round.value.timer = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in round.value.tick() }
        }
    }

    /// Takes `handler` out of the round of `loop` (on `loop`).
    func leave(_ handler: BrowserHandler, on loop: any EventLoop) {
        let round = self.round(on: loop)
        round.value.browsers[ObjectIdentifier(handler)] = nil
        if round.value.browsers.isEmpty {
            round.value.timer?.cancel()
            round.value.timer = nil
        }
    }

    /// The browsers the rounds hold and the timers they run, over every loop (each read on its
    /// loop).
    package func census() async throws -> (browsers: Int, timers: Int) {
        var browsers = 0
        var timers = 0
        for round in rounds.withLock({ Array($0.values) }) {
            let (held, timer) = try await round.eventLoop.submit { (round.value.browsers.count, round.value.timer == nil ? 0 : 1) }.get()
            browsers += held
            timers += timer
        }
        return (browsers, timers)
    }

    private func round(on loop: any EventLoop) -> NIOLoopBound<Round> {
        rounds.withLock { rounds in
            if let round = rounds[ObjectIdentifier(loop)] { return round }
            let round = NIOLoopBound(Round(), eventLoop: loop)
            rounds[ObjectIdentifier(loop)] = round
            return round
        }
    }

    /// The browsers of one event loop and their timer.
    final class Round {
        var browsers: [ObjectIdentifier: BrowserHandler] = [:]
        var timer: RepeatedTask?

        func tick() {
            // A browser dropped during the walk leaves the round: walk what was there.
            for browser in Array(browsers.values) { browser.pingTick() }
        }
    }
}
