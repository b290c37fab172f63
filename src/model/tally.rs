//! The range of views on a response: stance counts per draft, stale stances,
//! who has not yet been heard, and each member's share of voice.
//!
//! Equity of voice is a first-class view: a member with write rights who has
//! neither commented nor taken a stance on a response is listed by name.

use std::collections::BTreeMap;

use super::views::{DraftTally, MemberRef, Participation, StanceCounts, TallyView, TopFifth};
use super::{Result, Workspace};
use crate::ids::ObjectId;
use crate::trust::MemberId;

impl Workspace {
    /// The tally of one response.
    pub fn tally(&mut self, response: &ObjectId) -> Result<TallyView> {
        let stances = self.all_stances(response)?;
        let drafts = self
            .draft_entries(response)?
            .into_iter()
            .map(|d| {
                let mut counts = StanceCounts::default();
                let (mut stale, mut late) = (0, 0);
                for s in stances.iter().filter(|s| s.draft == d.id) {
                    counts.add(s.view.stance);
                    stale += usize::from(s.view.stale);
                    late += usize::from(s.view.late);
                }
                DraftTally {
                    id: d.id.to_string(),
                    title: d.title,
                    counts,
                    stale,
                    late,
                }
            })
            .collect();

        let mut voice: BTreeMap<MemberId, (usize, usize, usize)> = BTreeMap::new();
        for thread in self.threads(response)? {
            for c in thread.comments {
                let v = voice.entry(c.author).or_default();
                v.0 += 1;
                v.1 += word_count(&c.body);
            }
        }
        for s in &stances {
            voice.entry(s.view.member).or_default().2 += 1;
        }

        let m = self.membership();
        let mut participation: Vec<Participation> = m
            .members()
            .filter(|member| !member.removed)
            .map(|member| {
                let (comments, words, stances) = voice.get(&member.id).copied().unwrap_or_default();
                Participation {
                    member: member.id,
                    name: member.name.clone(),
                    comments,
                    words,
                    stances,
                }
            })
            .collect();
        participation.sort_by(|a, b| {
            (b.words, b.comments, b.stances)
                .cmp(&(a.words, a.comments, a.stances))
                .then_with(|| (&a.name, a.member).cmp(&(&b.name, b.member)))
        });
        let mut not_yet_heard: Vec<MemberRef> = m
            .members()
            .filter(|member| !member.removed && member.role.can_write())
            .filter(|member| !voice.contains_key(&member.id))
            .map(|member| MemberRef {
                member: member.id,
                name: member.name.clone(),
            })
            .collect();
        not_yet_heard.sort_by(|a, b| (&a.name, a.member).cmp(&(&b.name, b.member)));
        let writers = m
            .members()
            .filter(|member| !member.removed && member.role.can_write())
            .count();

        // Reminders are for those who have seen the drafts and stayed
        // silent, not for those whose device has not synced since.
        let (mut silent, mut could_not_have_seen) = (Vec::new(), Vec::new());
        for member in &not_yet_heard {
            if self.has_seen_drafts_among(response, &member.member, &stances)? {
                silent.push(member.clone());
            } else {
                could_not_have_seen.push(member.clone());
            }
        }
        let top_fifth = top_fifth(&participation, writers);
        Ok(TallyView {
            response: response.to_string(),
            drafts,
            not_yet_heard,
            silent,
            could_not_have_seen,
            participation,
            top_fifth,
        })
    }
}

/// The words of `text`: what `split_whitespace().count()` counts, several
/// times faster on ASCII text (the tally counts every comment's words).
pub fn word_count(text: &str) -> usize {
    if !text.is_ascii() {
        return text.split_whitespace().count();
    }
    // The ASCII characters `char::is_whitespace` takes: tab, line feed,
    // vertical tab, form feed, carriage return and space.
    let space = |b: u8| matches!(b, b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r' | b' ');
    let mut words = 0;
    let mut in_word = false;
    for &b in text.as_bytes() {
        let starts = !space(b) && !in_word;
        words += usize::from(starts);
        in_word = !space(b);
    }
    words
}

/// The words of the most active fifth (rounded up) of `writers` members,
/// from `participation` sorted most vocal first.
fn top_fifth(participation: &[Participation], writers: usize) -> TopFifth {
    let members = writers.div_ceil(5).max(1);
    let words = participation.iter().take(members).map(|p| p.words).sum();
    let total_words: usize = participation.iter().map(|p| p.words).sum();
    let percent = match total_words {
        0 => 0,
        total => ((words * 100 + total / 2) / total) as u32,
    };
    TopFifth {
        members,
        words,
        total_words,
        percent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::MemberId;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn words_are_counted_as_split_whitespace_counts_them(
            text in "[a-z \t\n\r\x0B\x0C\x1F\u{A0}\u{2003}é.,]{0,60}"
        ) {
            prop_assert_eq!(word_count(&text), text.split_whitespace().count());
        }
    }

    #[test]
    fn words_of_plain_text() {
        assert_eq!(word_count(""), 0);
        assert_eq!(word_count("  one  two\tthree\n"), 3);
        assert_eq!(word_count("a\x0Bb\x0Cc"), 3);
        assert_eq!(word_count("a\x1Fb"), 1);
    }

    fn p(words: usize) -> Participation {
        Participation {
            member: MemberId([0; 32]),
            name: String::new(),
            comments: 1,
            words,
            stances: 0,
        }
    }

    #[test]
    fn the_top_fifth_is_rounded_up_and_its_share_rounded() {
        // Ten writers: the fifth is two members, 70 + 20 of 100 words.
        let ps = [p(70), p(20), p(5), p(5)];
        let t = top_fifth(&ps, 10);
        assert_eq!(
            (t.members, t.words, t.total_words, t.percent),
            (2, 90, 100, 90)
        );
        // Three writers: one member. Nobody wrote: 0 %.
        assert_eq!(top_fifth(&[p(2), p(1)], 3).percent, 67);
        assert_eq!(top_fifth(&[], 0).percent, 0);
    }
}
