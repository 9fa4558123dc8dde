//! DNS messages of a DNS flow: what the flow reports, and the answers that feed the cache.

use super::record::{bump, AnswerData, DnsAnswer, Details};
use super::resolve::Event;
use super::{Ctx, MAX_DNS_ANSWERS_PER_FLOW, MAX_DNS_MESSAGES_PER_FLOW, MAX_DNS_NAMES_PER_FLOW};
use crate::proto::dns::{Message, RData};

/// Reads one DNS message of a flow. Returns false once the flow has had
/// [`MAX_DNS_MESSAGES_PER_FLOW`] messages: the caller stops reading it.
pub(super) fn message(details: &mut Details, msg: &[u8], ctx: &mut Ctx<'_>) -> bool {
    let summary = details.dns.get_or_insert_with(Default::default);
    if summary.messages >= MAX_DNS_MESSAGES_PER_FLOW {
        return false;
    }
    summary.messages += 1;
    let m = match Message::parse(msg) {
        Ok(m) => m,
        Err(e) => {
            bump(&mut ctx.stats.dns_errors, e.as_str());
            return true;
        }
    };
    ctx.stats.dns_messages += 1;
    for q in &m.questions {
        let name = q.name.as_bytes();
        if summary.queries.iter().any(|n| &n[..] == name) {
            continue;
        }
        if summary.queries.len() < MAX_DNS_NAMES_PER_FLOW {
            summary.queries.push(Box::from(name));
        } else {
            summary.dropped += 1;
        }
    }
    if !m.response {
        return true;
    }
    summary.rcode = Some(m.rcode);
    for r in &m.answers {
        if summary.answers.len() >= MAX_DNS_ANSWERS_PER_FLOW {
            summary.dropped += 1;
            continue;
        }
        let data = match &r.data {
            RData::A(a) => AnswerData::Addr((*a).into()),
            RData::Aaaa(a) => AnswerData::Addr((*a).into()),
            RData::Cname(n) => AnswerData::Name(Box::from(n.as_bytes())),
            RData::Https(s) | RData::Svcb(s) => {
                if let Some(p) = &s.ech_public_name {
                    ctx.emit(Event::EchName(Box::from(&p[..])));
                }
                AnswerData::Service {
                    priority: s.priority,
                    target: Box::from(s.target.as_bytes()),
                    alpn: s.alpn.iter().map(|a| Box::from(&a[..])).collect(),
                    ech: s.ech,
                }
            }
            RData::Other => AnswerData::Other,
        };
        summary.answers.push(DnsAnswer { name: Box::from(r.name.as_bytes()), rtype: r.rtype, ttl: r.ttl, data });
    }
    // The name the client asked for is what later flows to these addresses are attributed to.
    if let Some(q) = m.questions.first() {
        for (addr, ttl) in m.resolved_addresses() {
            let now = ctx.now;
            ctx.emit(Event::Answer { addr, name: Box::from(q.name.as_bytes()), ttl, ts: now });
        }
    }
    true
}
