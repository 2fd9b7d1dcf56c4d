import ExamBellCore

/// The roster of an exam as proctors and the operator see it: every candidate with status,
/// last activity, answered count, connection and ack, planned end, the end's receipts (told,
/// locked, saved) and the announcements seen, from the DB and the state store.
///
/// One builder serves `GET /api/exams/{id}/roster` and `/delivery` (web node) and the live
/// roster frames a socket node pushes to its proctors (`RosterPublisher`).
package struct RosterBuilder: Sendable {
    package let store: any PeopleStore & AnswerStore & ExamDayStore
    package let state: any StateStore

    package init(store: any PeopleStore & AnswerStore & ExamDayStore, state: any StateStore) {
        self.store = store
        self.state = state
    }

    /// Presence older than this is from a node that stopped without saying so.
    static package func presenceCutoff() -> Timestamp { Timestamp.now().adding(seconds: -15) }

    /// One candidate's receipts of its end: the DB's copy (final sync), else the state store's live one.
    package struct Receipts {
        package var told: Timestamp?
        package var locked: Timestamp?
        package var saved: Timestamp?
        package var savedItems: Int?
        /// How far the page's device clock was from the server's (ms), as reported with its lock.
        package var clockOffsetMs: Int?
    }

    /// The candidates of an exam with their receipts.
    package func receipts(examId: String) async throws -> [(Candidate, Receipts)] {
        async let candidatesRead = store.candidates(examId: examId)
        async let acksRead = state.acknowledgements(examId: examId)
        async let locksRead = state.locks(examId: examId)
        async let offsetsRead = state.clockOffsets(examId: examId)
        let (candidates, acks, locks, offsets) = try await (candidatesRead, acksRead, locksRead, offsetsRead)
        return candidates.map { candidate in
            let id = candidate.candidateId
            return (
                candidate,
                Receipts(
                    told: candidate.acknowledgedAt ?? acks[id], locked: candidate.lockedAt ?? locks[id], saved: candidate.finalSavedAt,
                    savedItems: candidate.finalSavedItems, clockOffsetMs: candidate.clockOffsetMs ?? offsets[id]
                )
            )
        }
    }

    package func delivery(of plan: ExamPlan) async throws -> DeliveryView {
        let rows = try await receipts(examId: plan.examId)
        var missing: [String: [String]] = ["told": [], "locked": [], "saved": []]
        for (candidate, receipt) in rows where candidate.status == .completed {
            if receipt.told == nil { missing["told"]?.append(candidate.candidateId) }
            if receipt.locked == nil { missing["locked"]?.append(candidate.candidateId) }
            if receipt.saved == nil { missing["saved"]?.append(candidate.candidateId) }
        }
        return DeliveryView(
            examId: plan.examId, counts: Self.counts(rows.map(\.1), candidates: rows.count),
            candidates: rows.map { candidate, receipt in
                .init(
                    candidateId: candidate.candidateId, told: receipt.told?.iso8601, locked: receipt.locked?.iso8601,
                    saved: receipt.saved?.iso8601, savedItems: receipt.savedItems, clockOffsetMs: receipt.clockOffsetMs
                )
            },
            missing: missing
        )
    }

    static package func counts(_ receipts: [Receipts], candidates: Int) -> DeliveryView.Counts {
        DeliveryView.Counts(
            candidates: candidates, told: receipts.count { $0.told != nil }, locked: receipts.count { $0.locked != nil },
            saved: receipts.count { $0.saved != nil }
        )
    }

    /// The announcements of an exam with how many candidates saw each.
    package func announcements(examId: String) async throws -> [AnnouncementView] {
        async let listRead = store.announcements(examId: examId, for: nil)
        async let seenRead = state.announcementsSeen(examId: examId)
        let (list, seen) = try await (listRead, seenRead)
        return list.map {
            AnnouncementView(
                announcementId: $0.announcementId, message: $0.message, timestamp: $0.timestamp.iso8601, candidateIds: $0.candidateIds,
                seen: seen[$0.announcementId]?.count ?? 0
            )
        }
    }

    package func roster(of plan: ExamPlan) async throws -> RosterView {
        let examId = plan.examId
        async let rowsRead = receipts(examId: examId)
        async let answeredRead = store.answeredCounts(examId: examId)
        async let presenceRead = state.presence(examId: examId, freshAfter: Self.presenceCutoff())
        async let timeAcksRead = state.timeAcks(examId: examId)
        async let announcementsRead = announcements(examId: examId)
        async let seenRead = state.announcementsSeen(examId: examId)
        let (rows, answered) = try await (rowsRead, answeredRead)
        let (presence, timeAcks, announcements, seen) = try await (presenceRead, timeAcksRead, announcementsRead, seenRead)
        let cached = try await state.candidates(rows.map(\.0.candidateId))
        var seenBy: [String: [String]] = [:]
        for (announcementId, ids) in seen {
            for id in ids { seenBy[id, default: []].append(announcementId) }
        }
        return RosterView(
            examId: examId, status: plan.status.rawValue, endDatetime: plan.endDatetime?.iso8601, itemCount: plan.items.count,
            candidates: rows.map { candidate, receipt in
                let live = cached[candidate.candidateId]
                // The later activity of the two: answers saved go to the DB, final sync may lag.
                let lastActive = [live?.lastActiveTime, candidate.lastActiveTime].compactMap { $0 }.max()
                let status = [live?.status, candidate.status].compactMap { $0 }.max { $0.rank < $1.rank } ?? candidate.status
                let plannedEnd = candidate.plannedEnd(in: plan)
                let acked = timeAcks[candidate.candidateId]
                return .init(
                    candidateId: candidate.candidateId, name: candidate.name, status: status.rawValue,
                    lastActiveTime: lastActive?.iso8601,
                    connected: presence.candidates.contains(candidate.candidateId),
                    acknowledged: receipt.told != nil,
                    answered: answered[candidate.candidateId] ?? 0,
                    scheduledEndDatetime: plannedEnd?.iso8601,
                    hasNewTime: acked.map { $0 == plannedEnd },
                    told: receipt.told?.iso8601, locked: receipt.locked?.iso8601, saved: receipt.saved?.iso8601,
                    savedItems: receipt.savedItems, clockOffsetMs: receipt.clockOffsetMs,
                    announcementsSeen: (seenBy[candidate.candidateId] ?? []).sorted()
                )
            },
            proctorsConnected: presence.proctors.count, scheduledEndDatetime: plan.scheduledEndDatetime?.iso8601,
            delivery: Self.counts(rows.map(\.1), candidates: rows.count), announcements: announcements
        )
    }
}
