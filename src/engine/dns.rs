//! DNS messages of a DNS flow: what the flow reports, and the answers that feed the cache.
//!
//! A message is read through [`MessageView`] in place. What the flow keeps goes into its
//! [`DnsSummary`](super::record::DnsSummary)'s arena, and the addresses the answers bind share
//! one copy of the question name, so an answer allocates nothing of its own.

use std::sync::Arc;

use super::record::{bump, Details};
use super::resolve::Event;
use super::{Ctx, MAX_DNS_ANSWERS_PER_FLOW, MAX_DNS_MESSAGES_PER_FLOW, MAX_DNS_NAMES_PER_FLOW};
use crate::proto::dns::{MessageView, RDataRef};

/// Reads one DNS message of a flow. Returns false once the flow has had
/// [`MAX_DNS_MESSAGES_PER_FLOW`] messages: the caller stops reading it.
pub(super) fn message(details: &mut Details, msg: &[u8], ctx: &mut Ctx<'_>) -> bool {
    let summary = details.dns.get_or_insert_with(Default::default);
    if summary.messages >= MAX_DNS_MESSAGES_PER_FLOW {
        return false;
    }
    summary.messages += 1;
    let m = match MessageView::parse(msg) {
        Ok(m) => m,
        Err(e) => {
            bump(&mut ctx.stats.dns_errors, e.as_str());
            return true;
        }
    };
    ctx.stats.dns_messages += 1;
    for q in m.questions() {
        summary.add_query(q.name, MAX_DNS_NAMES_PER_FLOW);
    }
    if !m.response {
        return true;
    }
    summary.rcode = Some(m.rcode);
    let room = MAX_DNS_ANSWERS_PER_FLOW.saturating_sub(summary.answer_count());
    summary.reserve_answers(m.answer_count().min(room));
    for r in m.answers() {
        if summary.answer_count() >= MAX_DNS_ANSWERS_PER_FLOW {
            summary.dropped += 1;
            continue;
        }
        if let RDataRef::Https(s) | RDataRef::Svcb(s) = &r.data {
            if let Some(p) = s.ech_public_name {
                ctx.emit(Event::EchName(Box::from(p)));
            }
        }
        summary.add_answer(&r);
    }
    // The name the client asked for is what later flows to these addresses are attributed to;
    // every address of the message shares one copy of it, made at the first.
    if let Some(q) = m.questions().next() {
        let mut name: Option<Arc<[u8]>> = None;
        let now = ctx.now;
        m.resolved_addresses(|addr, ttl| {
            let name = Arc::clone(name.get_or_insert_with(|| summary.shared_name(q.name)));
            ctx.emit(Event::Answer { addr, name, ttl, ts: now });
        });
    }
    true
}
