"""Does the customer ask for a person? Rules per language, plus example phrasings for the
embedding check (worded differently from the rules on purpose: they catch what rules miss)."""

from __future__ import annotations

import re

from .text import drop_expletives, normalise, words

# --- English -----------------------------------------------------------------------------------
_DET = (
    r"(?:(?:a|an|the|some|any|your|one of your|a real|a live|an actual|real|live|actual|human)\s+)*"
)
_PERSON = (
    r"(?:humans?(?: being| agent| representative| operator| executive)?|person|people|someone|"
    r"somebody|anyone|anybody|agents?|representatives?|operators?|executives?|advisor|adviser|"
    r"consultant|specialist|supervisor|manager|staff(?: member)?|employee|team member|"
    r"(?:live|real|human) (?:assistant|support|help)|assistant|"
    r"customer (?:service|support|care|assistance|services)(?: team| agent| rep| representative|"
    r" executive| staff| person| people)?|"
    r"support (?:team|staff|agent|person|executive)|your team|someone from your team|live chat|"
    r"tech(?:nical)? (?:support|team)(?: (?:team|staff|agent|person|executive))?|"
    r"sales (?:team|person|executive|representative)|salesperson|salesman|"
    r"help ?desk (?:team|staff|agent|person|executive)|"
    r"call cent(?:er|re) (?:agent|executive|staff|team|person)|customer executive|"
    # Indian English: "higher authority", "concerned person", "your senior", "team leader"
    r"higher (?:authority|authorities|official|officials|management|level)|concerned (?:person|"
    r"department|team|executive|authority|officer|staff)|team leader|senior (?:executive|person|"
    r"manager|staff|official|officer|team|agent|management)|"
    # "your senior" said alone, not the adjective ("a senior review", "senior citizen")
    r"(?:(?<=your )|(?<=the )|(?<=a )|(?<=to ))senior(?=\s*(?:$|[,.!?]|(?:please|now|about|"
    r"regarding|who|to|for)\b))|experts?|"
    r"(?:someone|somebody|anyone|anybody) from (?:your|the) (?:team|company|support|side|office)|"
    r"(?:someone|somebody|anyone|anybody) from (?:support|customer care|customer service|sales)"
    r"(?: team)?)"
)
# After a person's name in a request, words that make it a question about something else:
# "call customer care number", "customer service hours", "agent code".
_NOT_AFTER = (
    r"(?! (?:number|numbers|no|phone|hours|timings?|times?|email|e-mail|mail|address|page|"
    r"details|id|code|ticket|portal|site|website|app|link|helpline|form|list)\b)"
)
# Words around a short request that do not change it: "hi agent", "human pls!!", "sir
# representative now".
_FILLER = (
    r"(?:please|now|right now|immediately|urgently|urgent|quickly|quick|fast|hi+|hel+o+|"
    r"hey+|sir|madam|ma'am|mam|dear|ok|okay|thanks|thank you|bro|again|here|need|want|"
    r"i need|i want|we need|i would like|i'd like|give me|get me|send me|can i get|can i have|"
    r"can i talk to|can i speak to|connect|connect me|only|just)"
)
_CONTACT = (
    r"(?:talk|talking|speak|speaking|chat|chatting|contact|contacting|reach|reaching|"
    r"get in touch|getting in touch|connect|connecting|transfer|put|putting|hand|pass|"
    r"escalate|call|calling|communicate|communicating|deal|dealing|discuss|discussing|forward|"
    r"forwarding)"
)
# Who and what a customer fails to reach ("agent not answering", "helpline not reachable"). Not
# the customer's own line ("my phone line is not working" is a fault to answer).
_REACH_PERSON = (
    r"(?:agents?|executives?|representatives?|operators?|staff|support|your team|support team|"
    r"customer care executive)"
)
_REACH_CHANNEL = (
    r"(?:customer (?:care|service|support)|call cent(?:er|re)|helpline|help line|hot ?line|"
    r"help ?desk|toll free number|your (?:number|line)|(?:care|contact|support|helpline|"
    r"customer care|customer service) (?:number|no|line))"
)
_REACH_VERB = (
    r"(?:picking up|pick up|picked up|answering|answer|answered|responding|respond|responded|"
    r"replying|reply|replied|attending|calling back|call back|called back|getting back)"
)
_EN = [
    # "talk to a human", "connect me with someone", "contact a live agent", "speak with a person"
    rf"\b{_CONTACT}\b(?: me| us| this| it| my (?:case|issue|complaint|query|request|problem|"
    r"ticket|chat))?(?: (?:over|through|directly|now|right now))?"
    rf"(?: (?:to|with|through to|over to|me to|me with))?\s+{_DET}{_PERSON}\b{_NOT_AFTER}",
    # "real person", "live agent", "human agent"
    r"\b(?:real|live|actual|human) (?:human|person|people|agent|operator|representative|being)\b",
    # just "agent" / "human please" / "representative!!" / "hi, need human" / "agent, pls"
    rf"^(?:{_FILLER}[\s,!.?]*)*(?:{_DET})?{_PERSON}(?:[\s,!.?]+{_FILLER})*[\s,!.?]*$",
    # "agent please", "a human now"
    r"\b(?:agent|human|operator|representative|person)\s+(?:please|now|right now)\b",
    # "I want a human", "need a real person", "can I get an agent", "get me your supervisor"
    r"\b(?:want|need|request|prefer|demand|get|have|give|find|send|bring)\b(?: me| us)?"
    r"(?: to (?:have|get))? (?:a |an |some |one of your |your )(?:real |live |actual )?"
    r"(?:human|person|agent|representative|operator|staff member|employee|supervisor|manager)"
    r"\b(?!'| (?:who|that|which|number|id|code|of|from|at|in)\b)",
    # Words left out, as real customers write: "need human", "want agent now", "get me
    # someone to talk to", "i need real person pls". Only where the request ends there or goes
    # on as one ("... to help me", "... for this", "not a bot").
    r"\b(?:want|need|needs|request|require|get me|give me|send me|find me|bring me|looking for|"
    r"assign(?: me)?|allot(?: me)?|allocate(?: me)?|provide(?: me)?|arrange(?: for)?(?: me)?|"
    r"prefer|would prefer|rather have)"
    r"(?: to (?:have|get|see))? (?:a |an |some |your |the |one )?(?:real |live |actual |proper )?"
    r"(?:human|humans|person|agent|representative|operator|executive|staff|employee|"
    r"supervisor|manager|someone|somebody|human being)"
    r"(?=\s*(?:$|[,.!?]|(?:please|now|right now|here|urgently|immediately|quickly|asap|today|"
    r"sir|madam|thanks|thank you|instead|not (?:a )?(?:bot|robot|machine|chatbot)|"
    r"to (?:talk|speak|chat|help|assist|answer|respond|reply|call|contact|look|check|handle|"
    r"sort|resolve|fix|deal|explain|guide)|for (?:help|assistance|support|this|my|me)|"
    r"on (?:chat|call|the line|the phone)|who can|that can|from your|from customer|in chat)\b))",
    # "human to answer", "someone to talk to", "an agent who can help me"
    rf"^(?:{_FILLER}[\s,!.?]*)*(?:a |an |some )?(?:real |live |actual )?(?:human|person|agent|"
    r"someone|"
    r"somebody|representative|executive|operator) (?:to|who can|that can|who will|pls to) "
    r"(?:answer|help|assist|talk|speak|chat|respond|reply|call|contact|look|check|handle)\b",
    # Nobody to reach: "no one is answering", "call center not reachable", "customer care
    # number not available", "can't reach your support", "no response from support". Not a
    # door nobody opened, nor a parcel nobody was home for.
    r"\b(?:no one|nobody|no body|no agent|no human|no person|no executive|no staff)"
    r" (?:is |are |has |was |even )?(?:answering|answers|answered|responding|responds|responded|"
    r"replying|replies|replied|picking up|picks up|picked up|available|attending|attended|"
    r"helping|reachable|online|contacted|called)\b(?! (?:the door|the bell|at|to (?:receive|"
    r"collect|sign|pick|accept|take|open))\b)",
    rf"\b(?:{_REACH_PERSON}|{_REACH_CHANNEL})(?: (?:is|are|was|were|has|have|been|still|always|"
    r"also|just))* (?:not|never|isn't|aren't|wasn't|doesn't|don't|didn't)(?: (?:even|at all|"
    rf"been))? {_REACH_VERB}\b",
    rf"\b{_REACH_CHANNEL}(?: (?:is|are|was|were|has|have|been|still|always|also|just))* (?:not|"
    r"never|isn't|aren't|wasn't)(?: (?:even|at all|been))? (?:reachable|available|working|"
    r"connecting|connected|receiving|getting through|going through)\b",
    # "helpline always busy", "customer care number is switched off"
    rf"\b{_REACH_CHANNEL}(?: (?:is|are|was|were|has|have|been|still|always|also|just|constantly|"
    r"continuously))* (?:busy|engaged|switched off|unreachable|out of service|not connecting)\b",
    # "i want to raise this with your manager"
    rf"\braise (?:this|it|my (?:issue|case|complaint|concern|problem)|the issue) (?:with|to) "
    rf"{_DET}{_PERSON}\b{_NOT_AFTER}",
    r"\b(?:can't|cannot|can not|couldn't|could not|unable to|not able to|never able to)"
    r"(?: (?:get|seem to|even))? (?:reach|contact|get through to|connect to|connect with|"
    r"get hold of|talk to|speak to|speak with|talk with|get in touch with|call)"
    rf" (?:the |your |any |a |an )?(?:{_REACH_PERSON}|{_REACH_CHANNEL}|a person|a human|anyone "
    r"(?:at|from|in) (?:your|the|customer|support)|you|you guys|your company|anyone|anybody)\b",
    # "i have been trying to reach you", "tried calling so many times", "trying to call since
    # morning but no one"
    r"\b(?:tried|trying|try|been trying)(?: to)? (?:reach|reaching|contact|contacting|call|calling|"
    r"ring|ringing|get through to) (?:you|you guys|your (?:team|company|number|helpline|support|"
    r"customer care|customer service|call cent(?:er|re)))\b",
    r"\b(?:tried|trying|been trying)(?: to)? (?:call|calling|reach|reaching|contact|contacting|"
    r"ring|ringing)(?: you| you guys| your \w+| customer care| the helpline)?"
    r" (?:(?:so many|many|several|multiple|\d+|a lot of|countless|a number of) times|since "
    r"(?:morning|yesterday|\d+ (?:hours|days))|for (?:hours|days|\d+ (?:hours|days))|but (?:no|"
    r"nobody|no one))\b",
    # Waiting for one, or asking when one comes: "waiting for agent", "when will someone call me"
    rf"\b(?:waiting|wait|still waiting) (?:for|on) {_DET}{_PERSON}\b{_NOT_AFTER}"
    r"(?! (?:to (?:receive|collect|pick|deliver|bring|sign|take|accept|open|come home)|at home)\b)",
    rf"\bwhen (?:will|would|can|does|do|is|shall) {_DET}{_PERSON} (?:call|contact|reply|respond|"
    r"answer|get back|join|come online|talk|connect|be available|ring)\b",
    r"\b(?:no|not getting any|not getting|not got any|didn't get any|did not get any|never got any|"
    r"haven't got any|have not got any|haven't received any|have not received any|not received any)"
    r" (?:response|reply|answer|call back|callback) (?:from|by) (?:your |the |any )?"
    rf"(?:{_REACH_PERSON}|{_REACH_CHANNEL}|anyone|anybody|one)\b",
    # "contact support", "talk to customer care", "connect me to the call centre"
    rf"\b{_CONTACT}\b(?: me| us)?(?: (?:to|with|through to))? (?:the |your )?"
    rf"(?:support|help ?desk|call cent(?:er|re)|care team|customer care|customer service|"
    rf"helpline)\b{_NOT_AFTER}(?! (?:open|opens|available|working|timings?|hours|during|on"
    rf" (?:sunday|saturday|weekends?|holidays?))\b)",
    # Anybody there? "hello, is anyone available", "any human here"
    r"\b(?:is |are )?(?:there )?(?:anyone|anybody|someone|somebody|any human|any person|"
    r"any agent|a human|a person|an agent|a real person|any executive|any one)"
    r" (?:there|here|around|available|online|listening|out there|on the line|to help|to assist"
    r"|who can help|to talk to|i can talk to)\b(?! (?:at home|to (?:receive|collect|sign|pick|"
    r"accept|take)|for (?:delivery|pick ?up|collection)|in the house)\b)",
    # Call me: "call me", "call me now", "please call back", "contact me", "ring me", also after
    # another clause ("i'm interested, call me")
    rf"(?:^|[,.!?]\s*)(?:{_FILLER}[\s,!.?]*)*(?:can you |could you |can u |would you |kindly |"
    r"pls |someone |somebody |can someone |can somebody |ask someone to |have someone |"
    r"have an agent |"
    r"i want (?:a |an |your )?(?:agent|person|someone|executive) to |i want you to |"
    r"i need you to )?(?:(?:call|ring|phone|contact|reach) (?:me|back|me back)|give (?:me|us) "
    r"a (?:call|ring))\b(?! (?:url|api|function|feature|option|settings?|know|how|what|when|if|"
    r"later|by email|by mail|on email|through "
    r"email|by (?:my |the )?(?:name|first name|nickname))\b)",
    r"\b(?:please|pls|kindly|can you|could you|can someone|can somebody|can your (?:team|agent|"
    r"executive)|ask (?:someone|somebody|an agent|your team) to|i want (?:someone|somebody|"
    r"an agent|a person|your team|you) to|i need (?:someone|somebody|an agent|you) to)"
    r" (?:call|ring|phone|contact) (?:me|us)\b",
    r"\b(?:give me|need|want|request|expecting|waiting for) (?:a |an |your )?(?:call|phone call|"
    r"call back|callback)(?: back)?(?: from (?:you|your|an?|someone|somebody|the))?"
    r"(?=\s*(?:$|[,.!?]|(?:please|now|asap|today|from|on|at|urgently)\b))",
    rf"^(?:{_FILLER}[\s,!.?]*)*(?:a |an )?call back(?:[\s,!.?]+{_FILLER})*[\s,!.?]*$",
    # "call now", "call asap pls": the "me" left out
    rf"^(?:{_FILLER}[\s,!.?]*)*call (?:now|right now|immediately|urgently)(?:[\s,!.?]+{_FILLER})*"
    r"[\s,!.?]*$",
    # "agent available?", "agents online", "where is the agent", "agent needed"
    rf"^(?:{_FILLER}[\s,!.?]*)*(?:is |are )?(?:there )?(?:any |an |a |the |your )?(?:live |real )?"
    r"(?:agents?|humans?|executives?|representatives?|operators?|persons?|staff) (?:available|"
    r"online|there|here|free|needed|required|wanted)\b",
    rf"\bwhere (?:is|are) (?:the |an |any |your |a )?(?:real |live )?(?:agents?|humans?|"
    rf"executives?|representatives?|operators?|real person|staff|someone|anyone)\b{_NOT_AFTER}",
    r"\b(?:help|assistance|support) from (?:a |an |some |your |the )?(?:real |live |actual )?"
    r"(?:human|person|agent|"
    r"representative|executive|staff|someone real|real person|customer care)\b",
    # Asked for by phone: "arrange a call", "can i get a call", "need to talk on phone",
    # "please call", "executive call me". Not a feature of the line ("call forwarding").
    r"\b(?:arrange|schedule|book|request|need|want)(?: for)? (?:a |an )?(?:call|phone call|"
    r"call back)\b(?! (?:recording|history|logs?|details|forwarding|waiting|barring|drops?|"
    r"rates?|charges?|minutes|plan|pack|divert|conference|quality|off)\b)",
    r"\b(?:can|could|may) (?:i|we) (?:get|have) (?:a )?(?:call|phone call)(?: back)?"
    r"(?=\s*(?:$|[,.!?]|(?:please|now|from|today|asap)\b))",
    r"\b(?:please|pls|kindly|can you|could you|can u) call(?: back)?[\s!.?]*$",
    r"\b(?:want|need|like|wish) to (?:talk|speak|discuss)(?: (?:with you|to you|with someone))? "
    r"(?:on|over|by|via) (?:the )?(?:call|phone|telephone)(?=\s*(?:$|[,.!?]|(?:please|now|with|"
    r"to)\b))",
    rf"^(?:{_FILLER}[\s,!.?]*)*{_DET}{_PERSON}(?: (?:please|to|should|must|can|could|pls))? "
    r"(?:call|ring|phone|contact) me\b",
    # "human help", "human support"
    r"\bhuman (?:help|support|assistance|interaction|contact|response|answer)\b",
    # "a person to look at my case", "can an employee help me instead"
    r"\b(?:want|need|like|prefer|can|could|may|let|would|please)\b[^.?!]{0,25}"
    r"\b(?:a|an|some|one of your|your) (?:real |live |actual )?(?:human|person|employee|"
    r"staff member|agent|representative|operator|colleague|supervisor|manager) (?:to |who can |"
    r"that can |can |could |please )?(?:look|check|review|handle|help|assist|deal|sort|answer|"
    r"take over|take care|call|contact|get back)\b",
    # "have someone call me back", "can I get a callback"
    r"\b(?:have|get|ask|can|could|would|please) (?:someone|somebody|a person|an agent|a human|"
    r"an employee|a manager|a supervisor|your (?:team|staff|manager|supervisor)|one of your "
    r"\w+) (?:to )?(?:call|contact|email|ring|phone|reach|get back to) (?:me|us)\b",
    # "can someone from your team contact me", "could an executive call me back"
    rf"\b(?:have|get|ask|can|could|would|will|please|kindly) {_DET}{_PERSON} (?:to |please )?"
    r"(?:call|contact|ring|phone|reach|get back to|get in touch with) (?:me|us)\b",
    r"\b(?:call|ring|phone) me back\b",
    r"\b(?:request|get|want|need|arrange|schedule|book|have) (?:a |an )?(?:call ?back|call from"
    r" (?:a|an|your|someone))\b",
    # "is there a human around?", "is a real person available"
    r"\b(?:is there|are there|is|are) (?:a |an |any )?(?:real |live |actual )?(?:human|humans|"
    r"person|people|agent|agents|someone|somebody|anyone|anybody|operator|staff) (?:there|around|"
    r"available|online|on the line|i can (?:talk|speak|chat))\b",
    # "not a bot", "stop the bot", "no more bots", "i don't want to talk to a robot"
    r"\b(?:not|no more|stop|enough of|don't want|do not want|hate|sick of|tired of|done with|"
    r"fed up with|finished with)(?: (?:to )?(?:talk|talking|speak|speaking|chat|chatting|deal|"
    r"dealing) (?:to|with))?(?: (?:a|an|this|the|your|another|any))? (?:bot|bots|robot|robots|"
    r"machine|machines|chatbot|chatbots|automated)\b",
    # "transfer me", "escalate pls", "connect me!!" said alone
    rf"^(?:{_FILLER}[\s,!.?]*)*(?:(?:transfer|escalate)(?: (?:me|this|it|my (?:chat|case|call)))?|"
    rf"(?:connect|forward) (?:me|this|it|my (?:chat|case|call)))(?:[\s,!.?]+{_FILLER})*[\s,!.?]*$",
    # "transfer me", "put me through", "escalate this", "hand me over"
    r"\b(?:transfer|put|pass|hand) me (?:through|over|on)\b",
    r"\bescalate (?:this|my (?:case|issue|ticket|problem|request)|me|it)\b",
    # "get in touch with me", "pls reach out to me", "someone get back to me" (not "by email":
    # a question about the channel, answered as one)
    rf"^(?:{_FILLER}[\s,!.?]*)*(?:can you |could you |can u |would you |kindly |someone |"
    r"somebody |can someone |can somebody |have someone |ask someone to )?(?:get in touch with|"
    r"reach out to|get back to|reach) (?:me|us)\b(?! (?:by|via|on|through|over) (?:e-?mail|mail"
    r")\b)",
]
# Romanised Hindi, as Indian customers write in English chats: "agent se baat karni hai",
# "baat karao", "call karo", "customer care chahiye".
_HI_PERSON = rf"(?:{_PERSON}|kisi|kisi insaan|insaan|insan|aadmi|banda|aap|aapse|apse)"
_HINGLISH = [
    rf"\b{_HI_PERSON} (?:se|say|sey|sai|sy) (?:baat|bat|baath|bt)\b",
    rf"\b(?:baat|bat|baath) (?:karni|karna|krni|krna)(?: hai| h| he)? {_HI_PERSON} (?:se|say|sey|"
    r"sy)\b",
    r"\b(?:baat|bat|baath|bt) (?:karao|karwao|karwa do|karwado|kara do|karado|krwao|krao|krwa do|"
    r"karvao|karva do|karva dijiye|karwa dijiye|kara dijiye)\b",
    r"\b(?:call|phone|fone) (?:karo|kro|kijiye|kijie|kar do|kardo|krdo|kar dijiye|kar dena|"
    r"kare|karein|karen|back karo|back kijiye)\b",
    rf"\b{_HI_PERSON} (?:chahiye|chaiye|chahie|chaahiye|chahiyeh|chaahie)\b",
]
# Not a request for a person even though the words are there.
_EN_NOT = [
    r"\b(?:human resources|user[- ]agent|travel agent|real[- ]estate agent|estate agent|"
    r"insurance agent|booking agent|shipping agent|customs agent|secret agent|free agent|"
    r"sales agent|agent orange|agent fees?|agent number|agent id|agent code|agent program|"
    r"agent programme|become an agent|human error|human body|human rights|"
    r"live chat hours|chat history|person(?:al)? (?:data|information|details)|"
    r"contact (?:details|information|info|form|page)|"
    r"someone else(?:'s)?|another person(?:'s)?|this person|that person|the person who|"
    r"a person who|people who|someone who|somebody who|anyone who|anybody who)\b",
    # Negated: "I do not need chat agent", "don't want to talk to anyone", "no need for a
    # human", "without an agent", "don't transfer me". (Not a bot: "I don't want a bot" is
    # still a request, matched by its own rule; "can't reach anyone" is not a negation here.)
    rf"\b(?:don't|do not|dont|doesn't|does not|didn't|did not|won't|will not|wouldn't|"
    rf"would not|no longer|never) (?:really |even )?(?:need|want|wish|require|like|ask(?:ed)? "
    rf"for|asked)(?: to)?(?: (?:talk|speak|chat|be transferred|be connected|be put through|"
    rf"contact|call|deal))?(?: (?:to|with))?(?: (?:a|an|the|any|your|chat|live|real|human))*"
    rf" {_PERSON}\b",
    rf"\bno need (?:for|of|to)\b(?: (?:talk|speak|chat|contact|call|get|have|involve))?"
    rf"(?: (?:to|with))?(?: (?:a|an|the|any|your|chat|live|real|human))* {_PERSON}\b",
    r"\bno (?:agent|human|person|operator|representative|executive)s?(?: is| are)? (?:needed|"
    r"required|necessary|please|thanks|thank you)\b",
    rf"\bwithout (?:a |an |any |the )?(?:real |live |human )?{_PERSON}\b",
    r"\b(?:don't|do not|dont|no need to) (?:transfer|connect|escalate|put|hand|pass) (?:me|this|"
    r"it|us)\b",
    # "are you a real person?" asks about the bot; it is not a request.
    r"\b(?:are|r) you (?:a |an )?(?:real |live |actual )?(?:person|human|bot|robot|machine)\b",
    r"\bis this (?:a |an )?(?:real |live |actual )?(?:person|human|bot|robot)\b",
    r"\b(?:i'm|i am) not (?:a )?(?:bot|robot)\b",
    # The customer's own phone: "I can't call anyone from my phone" (a fault to answer).
    r"\b(?:can't|cannot|can not|unable to|not able to|couldn't|could not) (?:call|phone|ring|"
    r"text|message|dial) (?:anyone|anybody|someone|people|my|any)\b",
    # Past tense: reporting an earlier contact, not asking for one.
    r"\b(?:spoke|talked|chatted|contacted|called|emailed) (?:to|with)\b",
]

# --- Other supported languages (matched on accent-free lower case) ------------------------------
_OTHER = [
    # German
    r"\b(?:mit )?(?:einem |einer |einen |der |dem |ihrem |einem echten |einer echten )?"
    r"(?:menschen|mensch|mitarbeiter(?:in)?|berater(?:in)?|kundendienst|kundenservice|"
    r"kundenberater(?:in)?|sachbearbeiter(?:in)?|person|agenten|operator)\b"
    r"[^.?!]{0,30}\b(?:sprechen|reden|verbinden|chatten|schreiben|telefonieren)\b",
    r"\b(?:sprechen|reden|verbinden|chatten)\b[^.?!]{0,20}\b(?:menschen|mensch|mitarbeiter"
    r"(?:in)?|berater(?:in)?|person|kundendienst)\b",
    r"\b(?:echte[nmr]?|richtige[nmr]?|lebende[nmr]?) (?:mensch(?:en)?|person|mitarbeiter(?:in)?)\b",
    r"\b(?:mitarbeiter|mensch|berater)(?:in)? bitte\b",
    r"\bkein(?:en)? (?:bot|roboter|chatbot)\b",
    # French
    r"\b(?:parler|discuter|echanger|joindre|contacter|chatter|communiquer|etre mis en relation)"
    r"(?: (?:a|avec|en direct avec))? (?:un |une |le |la |l'|quelqu'un|un vrai |une vraie )?"
    r"(?:humain|conseiller|conseillere|agent|personne|operateur|operatrice|vrai|vraie|"
    r"etre humain|quelqu'un|service client|interlocuteur)\b",
    r"\b(?:vraie personne|vrai humain|personne reelle|etre humain|vrai conseiller)\b",
    r"\b(?:un humain|un conseiller|un agent) (?:svp|s'il vous plait|stp|s'il te plait)\b",
    r"\b(?:pas (?:un|de|a un) (?:robot|bot|chatbot))\b",
    # Spanish
    r"\b(?:hablar|comunicarme|comunicar|contactar|chatear|conversar|hable|hablo|pasame|"
    r"pasarme|comunicame|ponerme en contacto)(?: (?:con|a))? (?:un |una |el |la |algun |"
    r"alguna |un agente |)?(?:humano|humana|persona|agente|asesor|asesora|operador|operadora|"
    r"representante|alguien|ser humano|persona real)\b",
    r"\b(?:persona real|humano real|agente real|ser humano)\b",
    r"\b(?:agente|humano|asesor|operador) por favor\b",
    r"\bno (?:quiero )?(?:hablar con )?(?:un |una |el )?(?:bot|robot|maquina)\b",
    # Dutch
    r"\b(?:spreken|praten|chatten|bellen|contact opnemen|in contact komen|doorverbinden)"
    r"[^.?!]{0,10}\b(?:met|naar)? ?(?:een |de |iemand|een echte |een echt )?(?:mens|medewerker|"
    r"persoon|iemand|klantenservice|echt persoon|echte persoon|operator)\b",
    r"\b(?:mens|medewerker|iemand|persoon)\b[^.?!]{0,30}\b(?:spreken|praten|chatten)\b",
    r"\b(?:echt mens|echte mens|echt persoon|echte persoon|echte medewerker)\b",
    r"\b(?:medewerker|mens) (?:graag|alsjeblieft|alstublieft|aub|a\.u\.b\.)\b",
    r"\bgeen (?:bot|robot|chatbot)\b",
    # Italian
    r"\b(?:parlare|chattare|contattare|parlarne|comunicare|mettermi in contatto|passarmi)"
    r"(?: (?:con|a))? (?:un |una |l'|il |la |qualcuno|un vero |una vera )?(?:operatore|operatrice|"
    r"persona|umano|essere umano|assistente|consulente|qualcuno|addetto|addetta|agente)\b",
    r"\b(?:persona (?:reale|vera)|vera persona|essere umano|operatore umano)\b",
    r"\b(?:operatore|persona|umano) per favore\b",
    r"\bnon (?:voglio )?(?:parlare con )?(?:un |il )?(?:bot|robot|chatbot)\b",
    # Portuguese
    r"\b(?:falar|conversar|contatar|contactar|comunicar|chat|falo|passar|transferir)"
    r"(?: (?:com|para|a))? (?:um |uma |o |a |alguem|um atendente |)?(?:humano|humana|atendente|"
    r"pessoa|agente|operador|operadora|assistente|representante|alguem|ser humano|consultor)\b",
    r"\b(?:pessoa real|humano real|atendente humano|ser humano|pessoa de verdade)\b",
    r"\b(?:atendente|humano|pessoa) por favor\b",
]
_NOT_OTHER = [
    r"\b(?:recursos humanos|ressources humaines|risorse umane|personalabteilung|"
    r"agente de viajes|agent de voyage|agente di viaggio|reisbureau|user agent)\b",
]

_REQUEST_RE = re.compile("|".join(f"(?:{p})" for p in _EN + _HINGLISH + _OTHER))
_NOT_REQUEST_RE = re.compile("|".join(f"(?:{p})" for p in _EN_NOT + _NOT_OTHER))
# Cheap cue for the embedding check: without any of these words a message is not compared
# with the example phrasings at all (most messages), which keeps precision and time.
_CUE_RE = re.compile(
    r"\b(?:humans?|persons?|people|someone|somebody|anyone|anybody|no one|nobody|agents?|"
    r"representatives?|operators?|executives?|advisor|adviser|assistant|staff|employee|"
    r"consultant|specialist|supervisor|manager|(?:your|support|the|customer|service|care|sales)"
    r" team|bot|robot|machine|real|live|talk|talking|speak|speaking|chat|chatting|contact|"
    r"contacting|reach|call|connect|transfer|escalate|customer service|customer care|support|"
    r"mensch|menschen|mitarbeiter|berater|sprechen|humain|conseiller|personne|parler|humano|"
    r"persona|agente|asesor|hablar|medewerker|mens|spreken|praten|iemand|operatore|umano|"
    r"parlare|atendente|pessoa|falar|alguem|alguien|quelqu'un|qualcuno)\b"
)


def asks_for_person(text: str) -> bool:
    """True when the rules read the message as asking for a person (pure)."""
    norm = drop_expletives(normalise(text))
    if not norm:
        return False
    stripped = _NOT_REQUEST_RE.sub(" ", norm)
    if _REQUEST_RE.search(stripped) is not None:
        return True
    clauses = [c for c in _CLAUSE.split(stripped) if c.strip()]
    if not clauses:
        return False
    if len(clauses) == 1:
        return _short_request(clauses[0], alone=True)
    # The first or the last clause: one in the middle is an item of a list ("prices, agents,
    # offers").
    return _short_request(clauses[0], alone=False) or _short_request(clauses[-1], alone=False)


# A short message, or a short clause of one ("you are not helping, agent"), that names a person
# and says nothing else than asking for one: "agent chat", "assign agent", "connect executive
# pls", "customer care help". Any other word ("agent code", "customer care number", "live
# score") makes it a question about something else.
_SHORT_MAX_WORDS = 5
_CLAUSE = re.compile(r"\s*[,.!?;:]+(?:\s+|$)")
# In a longer message, a clause that greets ("hi agent, where is my order?") or names the bot
# ("thanks, assistant") addresses whoever answers; it asks for nobody.
_GREETINGS = frozenset({"hi", "hii", "hello", "hey", "dear", "thanks", "ok", "okay"})
_ADDRESSED = re.compile(r"\b(?:assistant|bot|chatbot)\b")
_SHORT_PERSON = re.compile(rf"\b{_DET}{_PERSON}\b")
_SHORT_WORDS = frozenset(
    {
        "please", "now", "hi", "hii", "hello", "hey", "sir", "madam", "mam", "ma'am", "dear",
        "ok", "okay", "thanks", "bro", "again", "here", "there", "need", "needed", "want",
        "required", "require", "get", "give", "send", "me", "us", "i", "we", "a", "an", "the",
        "any", "your", "real", "live", "actual", "connect", "talk", "speak", "chat", "call",
        "contact", "transfer", "assign", "provide", "arrange", "with", "to", "help",
        "assistance", "urgent", "urgently", "immediately", "quickly", "fast", "only", "just",
        "directly", "kindly", "available", "online", "is", "are", "where", "can", "from",
    }
)  # fmt: skip


def _short_request(clause: str, *, alone: bool) -> bool:
    tokens = words(clause)
    if not tokens or len(tokens) > _SHORT_MAX_WORDS:
        return False
    m = _SHORT_PERSON.search(clause)
    if m is None:
        return False
    rest = words(clause[: m.start()] + " " + clause[m.end() :])
    if not alone and (_GREETINGS.intersection(rest) or _ADDRESSED.search(m.group())):
        return False
    return all(t in _SHORT_WORDS for t in rest)


def has_person_cue(text: str) -> bool:
    """True when the message mentions anything a request for a person would (pure, cheap)."""
    norm = _NOT_REQUEST_RE.sub(" ", normalise(text))
    return _CUE_RE.search(norm) is not None


# Example phrasings for the embedding check. Kept short and varied: they are compared with the
# whole message, so each should be a complete request.
REQUEST_EXAMPLES: tuple[str, ...] = (
    "I want to talk to a human",
    "can I speak to a real person",
    "connect me with an agent please",
    "I need to speak with someone from your team",
    "let me talk to a representative",
    "get me a human",
    "I'd rather chat with a person than a bot",
    "transfer me to customer service",
    "is there a person I can talk to",
    "how do I reach a live agent",
    "you are not helping, I want to talk to someone",
    "I don't understand you, let me speak to an operator",
    "put me through to an employee",
    "stop, I want a real human",
    "I need help from an actual person",
    "please let a staff member handle this",
    "how can I contact a human agent",
    "I want assistance talking to somebody",
    "help me get in touch with an assistant",
    "I am trying to chat with an agent",
    "can you hand me over to your support team",
    "I'd like to escalate this to a supervisor",
    "I have to speak with a person",
    "Ich möchte mit einem Menschen sprechen",
    "Bitte verbinden Sie mich mit einem Mitarbeiter",
    "Je veux parler à un conseiller",
    "Puis-je parler à une vraie personne ?",
    "Quiero hablar con un agente humano",
    "Pásame con una persona, por favor",
    "Ik wil een medewerker spreken",
    "Kan ik met een echt persoon praten?",
    "Voglio parlare con un operatore",
    "Posso parlare con una persona reale?",
    "Quero falar com um atendente",
    "Posso falar com uma pessoa de verdade?",
    # The register of real customers: a few words, no verb, other words than "agent".
    "human please",
    "need agent now",
    "a real person",
    "customer care executive please",
    "connect me to customer care",
    "call me back please",
    "nobody is answering my calls",
    "your helpline is not reachable",
    "speak to manager",
    "I want someone to call me",
)
# Near misses: ordinary questions that share words with the requests above.
NOT_REQUEST_EXAMPLES: tuple[str, ...] = (
    "what are your customer service opening hours",
    "at what time is customer support available",
    "how do I change my browser user agent",
    "can I share my account with someone else",
    "how do I become a travel agent",
    "who do I contact in human resources",
    "can another person use my account",
    "what is agent orange exposure",
    "how do I add a team member to my account",
    "can someone else pick up my parcel for me",
    "I spoke to an agent yesterday, what is the status of my refund",
    "how many people can use one subscription",
    "is the live chat open on weekends",
    "can a person under 18 open an account",
    "how do I update the contact person on my account",
    "can my assistant manage the account for me",
    "are you a bot",
    "how do I talk to my bank about a declined payment",
    "the app is a bit slow today",
    "how do I cancel my order",
    "where can I leave a review of the agent",
    "what does the agent fee cover",
    "the agent app crashes when I log in",
    "our sales agents cannot log in to the portal",
    "my insurance broker asked me to send you this form",
    "does the person collecting the parcel need an ID",
    "customer care number",
    "what are your call centre timings",
    "is customer support open on sunday",
    "change my team name",
    "my call got disconnected",
    "the delivery person was rude",
    "I can't call anyone from my phone",
)
