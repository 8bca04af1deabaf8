"""Peer support groups: groups, membership under pseudonyms, code of conduct, recurring
meetings (RFC 5545 rules), the meeting lifecycle (lobby, admit, attendance), the finder and
each member's private calendar feed.

Modules, one concern each:

* ``schema``      the package's sqlite-utils ``Migrations("groups")`` set
* ``permissions`` who may do what: one pure ``decide(action, subject, facts)``
* ``access``      loads a group and the viewer's membership into :class:`permissions.Facts`
* ``recurrence``  rules (weekly, every other week, monthly by weekday), expansion, DST
* ``conduct``     the versioned code of conduct (markdown), acceptances, safe rendering
* ``directory``   groups themselves: create, edit, facilitators, invite links, the finder
* ``membership``  join / ask, requests, pseudonyms, leave, remove, ban, erase, reveal
* ``schedule``    a group's stored rule and its exceptions (cancel one, move one)
* ``meetings``    open, lobby, admit, join tokens, attendance, end; token -> seat lookup
* ``calendar``    the private ICS feed (RRULE + EXDATE + RECURRENCE-ID)

Every storage function is synchronous and takes a ``sqlite_utils.Database`` (see
therapy.storage); the web layer runs them through the store's writer or readers.
"""
