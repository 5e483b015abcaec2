#!/usr/bin/env python3
"""Write the fictional demo mailbox for "Ada Lindqvist".

Ada is an invented person (a marine biologist in Bergen); every name,
address and fact in this file is fiction, and every address uses an
``example.*`` domain.  The script is deterministic: fixed Date headers,
fixed Message-IDs (``<msg-017@lindqvist.example>`` style), fixed MIME
boundaries and fixed mbox "From " lines, so running it twice gives
byte-identical output.

Outputs (overwritten on every run):

* ``mipo_local/demo/mail/ada.mbox`` -- the whole mailbox, in date order
* ``mipo_local/demo/mail/sent.mbox`` -- only the messages Ada sent

Run it with the standard library only::

    .venv/bin/python scripts/make_demo_corpus.py
"""

from __future__ import annotations

import datetime as dt
import html
import mailbox
import pathlib
import re
import time
from email import policy
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAIL_DIR = ROOT / "mipo_local" / "demo" / "mail"

# --------------------------------------------------------------------------
# People (all fictional)
# --------------------------------------------------------------------------

ADA_HOME = ("Ada Lindqvist", "ada@lindqvist.example")
ADA_WORK = ("Ada Lindqvist", "ada.lindqvist@fjordlab.example")
ADA_ADDRESSES = {ADA_HOME[1], ADA_WORK[1]}

JORGEN = ("Jørgen Håland", "jorgen.haland@nordneskor.example")
KARIN = ("Karin Lindqvist", "karin.lindqvist@mejl.example")
MUM = ("Britt Lindqvist", "britt.lindqvist@mejl.example")
SINDRE = ("Sindre Aasheim", "sindre.aasheim@fjordlab.example")
MIREILLE = ("Mireille Dubois", "mireille.dubois@fjordlab.example")
HANNE = ("Hanne Vik", "hanne.vik@fjordlab.example")
TOBIAS = ("Tobias Reinholt", "tobias.reinholt@fjordlab.example")
EIRIK = ("Eirik Sandvold", "eirik.sandvold@arctickelp.example")
NORA = ("Nora Bakke", "nora.bakke@posten.example")
ARVID = ("Arvid Hope", "arvid.hope@fjordnett.example")
TOR = ("Tor Ellingsen", "havnesjef@sandvikenbatlag.example")
VET = ("Nordnes Dyreklinikk", "post@nordnesdyr.example")
HAKON = ("Håkon Berge", "hakon.berge@posten.example")
LIV = ("Liv Torsvik", "liv.torsvik@posten.example")
INGRID = ("Ingrid Solheim", "ingrid.solheim@posten.example")
JOURNAL = ("Journal of Coastal Ecology", "editorial@coastal-ecology-journal.example")
SAFETY = ("Svalbard Field Safety", "course@svalbardfield.example")
STATION = ("Kongsfjord Marine Station Logistics", "logistics@kongsfjord-station.example")
LARS = ("Lars Ekdahl", "lars.ekdahl@havsinstitut.example")
PER = ("Per Vold", "per.vold@trebat-forum.example")
BIKESHOP = ("Nordnes Sykkelverksted", "verksted@nordnes-sykkel.example")
DENTIST = ("Bryggen Tannklinikk", "noreply@bryggen-tann.example")
CYCLE_NEWS = ("Sykkelbyen Bergen", "nyhetsbrev@sykkelbyen.example")
BOAT_NEWS = ("Trebåtlaget Vestland", "post@trebatlaget.example")
KOR_NEWS = ("Nordnes Kor", "styret@nordneskor.example")

SIG_WORK = "Ada Lindqvist\nFjord Lab, Bergen"
SIG_WORK_LONG = "Ada Lindqvist\nResearcher, URCHINFRONT (NCRF-2291)\nFjord Lab, Marineholmen, Bergen"
SIG_HOME = "Ada Lindqvist\nNordnes, Bergen"
SIG_CHOIR = "Ada Lindqvist\nAlto 2, Nordnes Kor"


def T(text: str) -> str:
    """Trim a triple-quoted block: drop the first newline, end with one."""
    return text.strip("\n").rstrip() + "\n"


# --------------------------------------------------------------------------
# Threads: someone writes, Ada answers.
#
# Message fields: date ("YYYY-MM-DD HH:MM", Europe/Oslo local time), frm,
# to, subject, text, fmt ("plain" | "html" | "alt"), cte (None = 7bit,
# "quoted-printable", "base64"), html (optional hand-written HTML),
# legacy (True = iso-8859-1 body and RFC 2047 iso-8859-1 headers).
# Reply fields: date, text, sig (None or a signature block),
# sig_pos ("before" the quote or at the "end"), cte.
# --------------------------------------------------------------------------

THREADS = [
    # 1 -- choir director, bar 34 (iso-8859-1 body, latin-1 encoded headers)
    dict(
        incoming=dict(
            date="2026-03-08 18:40", frm=JORGEN, to=[ADA_HOME],
            subject="Øving tirsdag: Havets vuggesang, alt 2",
            legacy=True,
            text=T("""
Dear altos,

Before Tuesday's rehearsal, please look at Havets vuggesang, bars 30 to 40.
Alto 2 in particular: the drop in bar 34 has to be secure before we put the
sopranos' suspension on top of it. The choir page has a slow rehearsal track
at 72 bpm; concert tempo is 84.

Liv will run an alto sectional on 17 March at 18:30, before rehearsal.

We are nine weeks from the concert. No panic. A little panic.

Hilsen
Jørgen
"""),
        ),
        reply=dict(
            date="2026-03-08 21:05", cte="quoted-printable",
            text=T("""
Hi Jørgen,

Confession: bar 34 is my nemesis. I arrive at the low G late and about a
quarter-tone flat, usually while wondering where my breath went. I've been
running the 72 bpm track on the bike home over Puddefjordsbroen, which has
mostly taught the pedestrians what "søvn" sounds like held for two beats.

Question: would it help to breathe at the end of bar 33 instead of sneaking
one in halfway through 34? That's where I keep losing it.

I'll be at Liv's sectional on the 17th at 18:30, with pencil.

— Ada
"""),
        ),
    ),
    # 2 -- Karin, July visit
    dict(
        incoming=dict(
            date="2026-03-15 10:12", frm=KARIN, to=[ADA_HOME],
            subject="July?",
            text=T("""
Hej syster!

Jonas can't get time off in July, but Elis and I could come to Bergen.
Which weeks are good for you? Elis asked "Is Pixel still grey?" which I have
decided to take as a yes.

Also, are you still going to the North Pole in June?

Kram,
Karin
"""),
        ),
        reply=dict(
            date="2026-03-15 20:31", cte="quoted-printable",
            text=T("""
Yes! Come 11–19 July. I'm back from Svalbard on 22 June (not the North Pole,
about 1,000 km short, I checked), so I'll have three weeks to thaw out and
wash the spare duvet.

Elis gets the loft bed he's been going on about since Easter. You get the
sofa bed, which is better than it looks. Pixel is still grey, slightly
greyer round the chin, and on a kidney diet, so nobody feeds her ham however
hard she stares.

Plans so far: Fløyen on the first dry day, the big diving board at Nordnes
sjøbad, the crabs in the tank at the fish market, and Måke on her trestles —
she isn't going in the water until 15 August, but Elis can steer on land.
We could bake a loaf with Bjørn and start Elis his own starter. I'm betting
he names it "Pixel 2".

— Ada
"""),
        ),
    ),
    # 3 -- Sindre, urchin counts at R1 (incoming multipart/alternative)
    dict(
        incoming=dict(
            date="2026-04-22 16:05", frm=SINDRE, to=[ADA_WORK], fmt="alt",
            subject="R1 numbers?",
            text=T("""
Hi Ada,

Do you have today's R1 numbers typed up yet? Hanne wants a one-liner for the
board report tomorrow, and I want to know if my quadrat 11 was as bad as it
looked.

Also: my left glove leaked. Again.

S.
"""),
        ),
        reply=dict(
            date="2026-04-22 19:48", cte="quoted-printable", sig=SIG_WORK,
            text=T("""
Typed up, as the rule says.

R1 Rognaskjær, 6 m transect, 20 quadrats of 0.25 m²: mean 38.4 urchins per
m² (SE 2.8). Your quadrat 11 was the worst — 18 urchins, so 72 per m², right
by the crack in the bedrock. Lowest was quadrat 2 with 3. Recruits under
10 mm: 41, up from 17 last April. Tobias will be thrilled, in his quiet way.

For comparison, L4 Lyngholmen on the 14th: 6.5 per m² and 71 % canopy.

One-liner for Hanne: "R1 remains a barren at 38 urchins per m², well above
the 30 per m² threshold; recruitment more than doubled since 2025."

Buy new gloves. The lab pays; I'll sign the form.

Ada
"""),
        ),
    ),
    # 4 -- Mireille, tagging protocol (quoted-printable with accents)
    dict(
        incoming=dict(
            date="2026-04-10 09:20", frm=MIREILLE, to=[ADA_WORK],
            cte="quoted-printable",
            subject="Protocole de marquage (tagging) before Tuesday",
            text=T("""
Salut Ada,

Here is the tagging protocol as promised, in English, mostly:
punch a 6 mm hole 10 cm above the stipe–blade transition, cable tie loosely
around the stipe, photo with the slate in frame.

Do we tag 30 or 40 plants at Lyngholmen? I have 45 numbered ties. The café
downstairs was slow, so I numbered them all.

Also, I would like to be named in the méthode section this time, pas comme
la dernière fois.

Bises,
Mireille
"""),
        ),
        reply=dict(
            date="2026-04-10 12:02", cte="quoted-printable", sig=SIG_WORK,
            text=T("""
Salut!

40 plants, L4-01 to L4-40. Keep the other five ties as spares for the ones
the wolf-fish will inevitably chew.

Thank you for writing it down. It's in my notes as "Mireille's protocol",
so the méthode section is already settled — first name, full credit, no
footnote.

Tuesday the 14th: Tare II leaves Marineholmen at 08:00, Tobias driving. I'll
bring the punch and the slates, you bring the ties and your good mood.

Ada
"""),
        ),
    ),
    # 5 -- Hanne, Svalbard budget (Ada's reply is base64)
    dict(
        incoming=dict(
            date="2026-03-04 14:30", frm=HANNE, to=[ADA_WORK],
            subject="Svalbard budget, please",
            text=T("""
Ada,

The board meets on the 12th. Can I have the Svalbard budget by Friday?
A single number and a short table is enough.

And please tell me the shipping isn't going to be 30,000 again.

Hanne
"""),
        ),
        reply=dict(
            date="2026-03-05 16:10", cte="base64", sig=SIG_WORK_LONG,
            text=T("""
Hi Hanne,

Inline, because attachments in this mailbox go to die:

  Flights Bergen–Longyearbyen, return        6,900
  Flight Longyearbyen–Ny-Ålesund, return     9,800
  Station accommodation, 12 nights          31,200
  Boat and dive support at the station      18,000
  Safety course + rifle rental               4,600
  Shipping of frozen samples                 8,500
  Consumables                                5,500
  Total                                 84,500 NOK

All on NCRF-2291. Shipping is 8,500, not 30,000: 120 tissue samples on dry
ice fit in one box. Dates are 8–22 June; the rifle course is on 9 June in
Longyearbyen, and Eirik Sandvold's team covers the boat crew.

Best,
Ada
"""),
        ),
    ),
    # 6 -- Eirik, Kongsfjorden dive plan (incoming HTML only, with a table)
    dict(
        incoming=dict(
            date="2026-03-20 11:00", frm=EIRIK, to=[ADA_WORK], fmt="html",
            subject="Kongsfjorden dive plan (draft)",
            text=T("""
Hi Ada,

Draft plan for June below. Dive window 11–20 June. Water 2–4 °C. Two dives
per day at most, 40 minutes each.

  KF-1  outer kelp line      5–12 m   bedrock and boulders
  KF-2  inner bay            4–10 m   cobbles, some silt
  KF-3  glacier-side site    6–15 m   silty boulders

Bring your own dry suit. We have spare regulators, but not many.

Question: do you want to use your 0.25 m² quadrats, or our 1 m² frames?

Eirik
Arctic Kelp Network
"""),
            html=T("""
<html><body>
<p>Hi Ada,</p>
<p>Draft plan for June below. Dive window <b>11&ndash;20 June</b>. Water 2&ndash;4&nbsp;&deg;C.
Two dives per day at most, 40 minutes each.</p>
<table border="1" cellpadding="4">
<tr><th>Site</th><th>Description</th><th>Depth</th><th>Substrate</th></tr>
<tr><td>KF-1</td><td>outer kelp line</td><td>5&ndash;12 m</td><td>bedrock and boulders</td></tr>
<tr><td>KF-2</td><td>inner bay</td><td>4&ndash;10 m</td><td>cobbles, some silt</td></tr>
<tr><td>KF-3</td><td>glacier-side site</td><td>6&ndash;15 m</td><td>silty boulders</td></tr>
</table>
<p>Bring your own dry suit. We have spare regulators, but not many.</p>
<p>Question: do you want to use your 0.25&nbsp;m&sup2; quadrats, or our 1&nbsp;m&sup2; frames?</p>
<p>Eirik<br>
<a href="https://arctickelp.example/">Arctic Kelp Network</a></p>
</body></html>
"""),
        ),
        reply=dict(
            date="2026-03-20 15:45", cte="quoted-printable", sig=SIG_WORK, sig_pos="end",
            text=T("""
Hi Eirik,

Looks great. Quadrats: mine, 0.25 m², 20 per transect, one every 5 m —
otherwise comparing with Bergen becomes a maths exercise nobody wants. I'll
bring two frames, flat-packed.

Dry suit: mine, size M, new neck seal fitted this month, with a 400 g
undersuit. I'm borrowing Sindre's cold-water regulator set, so I won't eat
into your spares.

KF-3 is the one I'm most curious about. If urchin density there sits near
30 per m² with all that glacial silt, the threshold story gets interesting.

I arrive in Ny-Ålesund on the 10th, after the safety course on the 9th.

Ada
"""),
        ),
    ),
    # 7 -- Nora, hike (incoming base64)
    dict(
        incoming=dict(
            date="2026-03-11 08:15", frm=NORA, to=[ADA_HOME], cte="base64",
            subject="Sunday hike?",
            text=T("""
Ada!

The forecast for Sunday is actually dry — Stoltzekleiven and on to Fløyen?
I'll bring the good chocolate and the dog-eared map.

Klem,
Nora
"""),
        ),
        reply=dict(
            date="2026-03-11 12:40", cte="quoted-printable",
            text=T("""
Sunday's no good — I've promised Bjørn a bake day, and the freezer needs
filling before the choir bake sale in May. It's a long game.

Saturday instead? Ulriken: meet at the cable car station at 10:00, walk up,
take the cable car down if my knees vote for it. I'll bring a thermos and a
Tuesday loaf. You bring the chocolate. The map is optional; the mountain is
quite big and hard to miss.

— Ada
"""),
        ),
    ),
    # 8 -- Arvid Hope, Måke's history (iso-8859-1 body, latin-1 subject)
    dict(
        incoming=dict(
            date="2026-02-02 19:30", frm=ARVID, to=[ADA_HOME], legacy=True,
            subject="Måke",
            text=T("""
Dear Ada,

Tor at the båtlag tells me you have started on the planks. Good.

She was built in 1962 by the Tveit brothers in Rosendal, the same year I was
born. My father bought her from the first owner in 1979 and gave her to me
that summer. She was pale green then. If you find something carved under the
aft thwart, that was me at 17, with my father's knife and without his
permission.

The Sabb: the timing was set in 1998 and she has been happy since. Do not
let anyone at the båtlag tell you otherwise.

Med vennlig hilsen
Arvid Hope
"""),
        ),
        reply=dict(
            date="2026-02-03 20:15", cte="quoted-printable", sig=SIG_HOME,
            text=T("""
Dear Arvid,

What a lovely email. I found it: "A.H. 1979" under the aft thwart, neat
letters, deeper than I'd expect from a 17-year-old with a borrowed knife.
It stays exactly where it is.

And pale green! I found that colour under four layers of paint in January,
so now I know it was hers from the start. I'm thinking of going back to it.

Progress: the garboard and the two planks above it on the port side are
soft between frames 6 and 9, so they're coming out. I'm ordering 25 mm larch
from the sawmill in Os this week. Frames 7 and 8 are cracked; I'll sister
them rather than replace them.

The crane lift is planned for 15 August. You'd be very welcome at the
relaunch — there will be cardamom buns.

I won't touch the timing. I promise.

— Ada
"""),
        ),
    ),
    # 9 -- harbour master, crane lift (utf-8 encoded subject, QP body)
    dict(
        incoming=dict(
            date="2026-04-16 10:00", frm=TOR, to=[ADA_HOME], cte="quoted-printable",
            subject="Kranløft i august",
            text=T("""
Hei Ada,

Crane lifts for August: I have Saturday 15 August at 09:00, or Saturday
22 August at 13:00. Price is 1 850 kr for members, paid to the båtlag
account before the lift.

Which one do you want?

Tor Ellingsen
Havnesjef, Sandviken båtlag
"""),
        ),
        reply=dict(
            date="2026-04-16 18:22", cte="quoted-printable",
            text=T("""
Hei Tor,

15 August at 09:00, please. I'll pay the 1,850 kr this week.

She'll be ready: the third plank goes in during May, then pine tar inside and
paint outside in July, while my sister is here to hold brushes. Berth 14 as
before?

Thanks for the kind words at Easter, by the way. I've been telling everyone
"first proper plank work on that slip since 1990".

— Ada
"""),
        ),
    ),
    # 10 -- vet reminder (incoming HTML only)
    dict(
        incoming=dict(
            date="2026-03-16 08:00", frm=VET, to=[ADA_HOME], fmt="html",
            subject="Reminder: Pixel's check-up on 18 March",
            text=T("""
Dear Ada Lindqvist,

This is a reminder that Pixel has an appointment with Dr. Solveig Nes on
Wednesday 18 March at 16:15.

Please bring a fresh urine sample if possible.

Change or cancel: https://nordnesdyr.example/booking

Nordnes Dyreklinikk
"""),
            html=T("""
<html><body>
<p>Dear Ada Lindqvist,</p>
<p>This is a reminder that <b>Pixel</b> has an appointment with Dr. Solveig Nes on
<b>Wednesday 18 March at 16:15</b>.<br>
Please bring a fresh urine sample if possible.</p>
<p><a href="https://nordnesdyr.example/booking">Change or cancel your appointment</a></p>
<p>Nordnes Dyreklinikk</p>
</body></html>
"""),
        ),
        reply=dict(
            date="2026-03-16 12:30", cte="quoted-printable",
            text=T("""
Hello,

Thanks, we'll be there at 16:15, Pixel under protest. Urine sample: I'll
try. She has opinions about the tray.

Two questions for Dr. Nes, if she has a minute:

1. Pixel's creatinine was 168 µmol/L on 24 February. She's been on the renal
   wet food since then, 55 g twice a day, and eats it happily (chicken only;
   she refuses fish). Should we recheck her bloods now, or wait until August
   as planned?
2. She's gone from 4.6 kg last autumn to about 4.4 kg on my kitchen scale.
   Worth worrying about?

Best regards,
Ada Lindqvist
"""),
        ),
    ),
    # 11 -- Tobias, thesis chapter 2
    dict(
        incoming=dict(
            date="2026-04-20 17:55", frm=TOBIAS, to=[ADA_WORK],
            subject="Chapter 2 draft (urchin recruitment)",
            text=T("""
Hi Ada,

The draft of chapter 2 is on the shared drive (Thesis/ch2_v3.docx). I know
it's due on the 30th; sorry it's long.

Specific questions:
- Is it OK to mix the 2024 data from the 1 m2 frames with the 0.25 m2
  quadrat data?
- Do I need one figure per site, or one combined figure?

Thanks,
Tobias
"""),
        ),
        reply=dict(
            date="2026-04-23 21:10", cte="quoted-printable", sig=SIG_WORK,
            text=T("""
Hi Tobias,

Read it on the bus, then again at my desk with a pen. It's good. Really.

Three things:

1. Don't mix the 2024 1 m² frames with the 0.25 m² quadrats in one model.
   Analyse them separately or drop 2024. Reviewers will find it, and they
   will be unkind.
2. One combined figure, three panels (R1, L4, K2), same y-axis. Figure 3's
   y-axis currently goes to 200; nothing we've ever counted goes above 72
   per m².
3. Add yesterday's R1 recruits: 41 under 10 mm, against 17 in April 2025.
   That's your headline, not a footnote.

The deadline stays 30 April, but if the figures need two more days, take
them and tell Hanne I said so.

Ada
"""),
        ),
    ),
    # 12 -- Håkon the neighbour, cat sitting (utf-8 encoded From)
    dict(
        incoming=dict(
            date="2026-05-11 19:05", frm=HAKON, to=[ADA_HOME], cte="quoted-printable",
            subject="Pixel i juni",
            text=T("""
Hi Ada,

Of course I'll take Pixel in June. You told me the grams at the concert and
I've already forgotten the times, so please write it all down.

Is the bread thing in your fridge mine to look after as well, or does it
look after itself?

Håkon (2. etasje)
"""),
        ),
        reply=dict(
            date="2026-05-11 21:30", cte="quoted-printable",
            text=T("""
Thank you, Håkon — you're a hero.

Dates: I leave on 8 June at 04:50 (I'll put the key through your door the
night before) and I'm back on the evening of 22 June.

Pixel: 55 g of the renal wet food twice a day, at 07:00 and 19:00. Chicken
pouches only; the fish ones are for emergencies and she'll act betrayed.
Refill the water fountain every two days. She will tell you she hasn't been
fed. She has.

Bjørn (the bread thing) lives in the fridge while I'm away and mostly looks
after himself. If you feel brave: once a week, stir in 50 g flour and 50 g
water and put the lid back on. If you don't, he'll survive two weeks of
neglect. He's five; he's seen worse.

Balcony: the yellow watering can, tomatoes every other day.

There's a box of cardamom buns in the freezer with your name on it.
Literally. I used tape.

— Ada
"""),
        ),
    ),
    # 13 -- Mum, birthday parcel (utf-8 subject, QP body, Swedish)
    dict(
        incoming=dict(
            date="2026-03-18 20:10", frm=MUM, to=[ADA_HOME], cte="quoted-printable",
            subject="Paket på väg",
            text=T("""
Hej Ada!

Jag har skickat ett paket till din födelsedag. Don't open it before Monday.
Det är något stickat. (It's knitted. That's all I'll say.)

Kram från Gävle,
Mamma
"""),
        ),
        reply=dict(
            date="2026-03-23 19:40", cte="quoted-printable", sig=SIG_HOME, sig_pos="end",
            text=T("""
Hej Mamma,

It arrived on Friday and I was good and waited until this morning.
Lingonberry red! They're perfect. I'm wearing them now, and the left heel
is slightly roomier, which I've decided is for the foot that braces when I
crank Måke's engine.

They're coming to Svalbard in June. They'll be the warmest thing on the
island.

The pepparkakor lasted until about half past ten. The lab had a cake and
Sindre wrote "38 urchins / m²" on it in icing. I'll explain on Sunday when
I call.

Tusen tack. Kram,
— Ada
"""),
        ),
    ),
    # 14 -- Liv, bake sale
    dict(
        incoming=dict(
            date="2026-03-09 21:45", frm=LIV, to=[ADA_HOME],
            subject="Bake sale 9 May: what are you bringing?",
            text=T("""
Hi altos,

I'm collecting promises for the concert bake sale. Last year we raised
2,900 kr for the autumn trip fund and I'd like to beat that.

Reply with what you're bringing!

And a reminder: alto sectional on 17 March at 18:30, before rehearsal.

Liv
"""),
        ),
        reply=dict(
            date="2026-03-10 07:50", cte="quoted-printable", sig=SIG_CHOIR,
            text=T("""
Hi Liv,

24 cardamom buns (the Gävle recipe: pods crushed by hand, 9 minutes at
225 °C, not 10) and two sourdough loaves. Put me down for setting up the
table at the interval too.

I'll be at the sectional on the 17th. Please schedule bar 34 of Havets
vuggesang early, while I still have courage.

— Ada
"""),
        ),
    ),
    # 15 -- journal review invitation (incoming multipart/alternative)
    dict(
        incoming=dict(
            date="2026-04-27 09:00", frm=JOURNAL, to=[ADA_WORK], fmt="alt",
            subject="Invitation to review manuscript JCE-2026-0412",
            text=T("""
Dear Dr. Lindqvist,

I would like to invite you to review the manuscript JCE-2026-0412,
"Grazing fronts and kelp recovery in a temperate fjord system", submitted
to the Journal of Coastal Ecology.

If you accept, we would be grateful for your report within 30 days.

Accept or decline: https://coastal-ecology-journal.example/review/JCE-2026-0412

With best wishes,
Dr. Paola Marchetti
Handling Editor, Journal of Coastal Ecology
"""),
        ),
        reply=dict(
            date="2026-04-28 08:30", cte="quoted-printable", sig=SIG_WORK_LONG,
            text=T("""
Dear Dr. Marchetti,

Thank you for thinking of me. I'm afraid I have to decline: the review would
fall right on top of my fieldwork in Svalbard (8–22 June), where my internet
will be a satellite and my hands too cold to type.

May I suggest Dr. Mireille Dubois at Fjord Lab
(mireille.dubois@fjordlab.example)? She works on kelp growth in exactly
this kind of system and would give the manuscript a careful read.

With best wishes,
Ada Lindqvist
"""),
        ),
    ),
    # 16 -- Svalbard safety course (incoming multipart/alternative)
    dict(
        incoming=dict(
            date="2026-02-25 13:00", frm=SAFETY, to=[ADA_WORK], fmt="alt",
            subject="Booking confirmation: field safety and rifle course, 9 June",
            text=T("""
Dear Ada Lindqvist,

Your place on the Field Safety and Rifle Course is confirmed.

Date: Tuesday 9 June 2026, 08:30-17:00
Booking number: SFS-26-0609-14

Bring outdoor clothing for six hours outside, photo ID, and this booking
number. Lunch is included.

More information: https://svalbardfield.example/courses

Svalbard Field Safety
"""),
        ),
        reply=dict(
            date="2026-02-25 15:20", sig=SIG_WORK,
            text=T("""
Hello,

Thank you for the confirmation. Two quick questions:

1. I land in Longyearbyen late on 8 June. Is there a meeting point on the
   9th, or do we go straight to the course building for 08:30?
2. I will need a rifle for twelve days in Ny-Alesund afterwards, 10 to 21
   June. Is rental arranged through you or through the station?

Kind regards,
Ada Lindqvist
"""),
        ),
    ),
    # 17 -- Sindre, boat time on Tare II
    dict(
        incoming=dict(
            date="2026-04-08 10:30", frm=SINDRE, to=[ADA_WORK],
            subject="Tare II in April",
            text=T("""
The boat calendar is filling up. Mireille has the 14th booked for L4.
Do you want the 22nd for R1? The forecast is silly that far out, but the
tides are OK.

S.
"""),
        ),
        reply=dict(
            date="2026-04-08 11:02",
            text=T("""
Yes, the 22nd for R1. Leaving Marineholmen at 07:30, two dives, back by
mid-afternoon. You, me, and Tobias driving; he needs the boat hours.

Anchor at the iron ring on the north face, please, not where you spent
twenty minutes with the chain last year.

Booking it in the calendar now.

A
"""),
        ),
    ),
    # 18 -- Ingrid wants some of Bjørn
    dict(
        incoming=dict(
            date="2026-02-04 22:10", frm=INGRID, to=[ADA_HOME],
            subject="Sourdough starter?",
            text=T("""
Ada, at the coffee break you said you'd give me some of your starter.
Is that offer still open? I have a jar, a lot of enthusiasm and no idea
what I'm doing.

Ingrid
"""),
        ),
        reply=dict(
            date="2026-02-05 07:45", cte="quoted-printable",
            text=T("""
Of course! I'll bring 50 g of Bjørn in a jam jar to rehearsal on Tuesday.

Care instructions, short version:
- Feed him 1:5:5: 20 g starter, 100 g flour, 100 g water.
- I use 80 % bread flour and 20 % whole rye.
- Keep him around 24 °C; he peaks about 7 hours after feeding.
- If he smells like nail polish remover, he's hungry, not dying.

Name him something dignified. He comes from a good family.

— Ada
"""),
        ),
    ),
    # 19 -- Karin, Elis's drawing (incoming base64)
    dict(
        incoming=dict(
            date="2026-04-12 18:00", frm=KARIN, to=[ADA_HOME], cte="base64",
            subject="Elis drew Pixel",
            text=T("""
Elis has drawn Pixel as a dragon and wants to know whether you'll put it on
your fridge. It's coming by post, because Jonas "doesn't trust the cloud
with art".

He also asked whether Pixel can breathe fire. I said only on Tuesdays.

Kram,
K
"""),
        ),
        reply=dict(
            date="2026-04-12 20:30", cte="quoted-printable",
            text=T("""
Tell Elis the dragon goes on the fridge, next to Bjørn's feeding chart,
which is the place of highest honour in this flat.

Pixel can't breathe fire, but the noise she makes at the hoover is close.
And on Tuesdays I'm at choir from seven, so she'd be breathing fire at an
empty flat. Very dramatic, no audience.

Tell him to start practising his jump for the big board at Nordnes sjøbad.
July is coming.

— Ada
"""),
        ),
    ),
    # 20 -- Jørgen, concert programme and the solo (utf-8 encoded From/Subject)
    dict(
        incoming=dict(
            date="2026-04-19 22:00", frm=JORGEN, to=[ADA_HOME], cte="quoted-printable",
            subject="Programmet for 9. mai – og en solo?",
            text=T("""
Dear Ada,

The programme for 9 May, in order:

1. Lanterns over Vågen
2. Havets vuggesang
3. Tidevann
4. Three Small Songs for Rain
   (interval and bake sale)
5. Kystlinje
6. Nordnes at Night (encore)

Would you consider the alto solo in Kystlinje? You have the right colour in
the low register, and bar 34 is better every week.

Jørgen
"""),
        ),
        reply=dict(
            date="2026-04-20 07:30", cte="quoted-printable", sig=SIG_CHOIR,
            text=T("""
Dear Jørgen,

I'm very flattered, and the answer is still no: kindly, firmly, and for the
second time.

Give it to Liv. She's been singing it under her breath at every coffee break
since February, and she'll make people cry in the good way. I'm much more
use holding the floor of the harbour in bar 34. (It's better. Not finished.
Better.)

— Ada
"""),
        ),
    ),
    # 21 -- station logistics (incoming multipart/alternative with a table)
    dict(
        incoming=dict(
            date="2026-05-04 10:15", frm=STATION, to=[ADA_WORK], fmt="alt",
            subject="Arrival information, 10 June",
            text=T("""
Dear Ada Lindqvist,

Welcome to Kongsfjord Marine Station. Your arrival day, 10 June:

  11:40  Plane lands in Ny-Alesund
  12:30  Check-in and room keys (room 7, Blue House)
  14:00  Station safety briefing
  16:00  Boat and dive induction

Meals are served at 07:30, 12:00 and 18:00. Please let us know about any
special requirements for laboratory space or freezers before 20 May.

Station Logistics
"""),
            html=T("""
<html><body>
<p>Dear Ada Lindqvist,</p>
<p>Welcome to Kongsfjord Marine Station. Your arrival day, <b>10 June</b>:</p>
<table border="1" cellpadding="3">
<tr><th>Time</th><th>What</th></tr>
<tr><td>11:40</td><td>Plane lands in Ny-&Aring;lesund</td></tr>
<tr><td>12:30</td><td>Check-in and room keys (room 7, Blue House)</td></tr>
<tr><td>14:00</td><td>Station safety briefing</td></tr>
<tr><td>16:00</td><td>Boat and dive induction</td></tr>
</table>
<p>Meals are served at 07:30, 12:00 and 18:00.<br>
Please let us know about any special requirements for laboratory space or
freezers <b>before 20 May</b>.</p>
<p>Station Logistics<br>
<a href="https://kongsfjord-station.example/visitors">Visitor handbook</a></p>
</body></html>
"""),
        ),
        reply=dict(
            date="2026-05-04 14:00", cte="quoted-printable", sig=SIG_WORK,
            text=T("""
Hello,

Thank you, very clear. One request, well before the 20th:

I'll collect 120 kelp tissue samples between 11 and 20 June, and they need to
go into a −80 °C freezer the same day. Could you reserve one shelf (about
40 × 30 cm) for Fjord Lab from 11 June until we ship on 21 June? They're in
2 ml cryotubes, nine racks.

Also, I'm diving with Eirik Sandvold's team. Is the 16:00 boat induction for
both of us, or does he skip it as a regular?

Best regards,
Ada Lindqvist
"""),
        ),
    ),
    # 22 -- Lars Ekdahl, former PhD supervisor, asks about the culling trial
    dict(
        incoming=dict(
            date="2026-04-02 16:40", frm=LARS, to=[ADA_WORK],
            subject="Your culling trial",
            text=T("""
Ada,

I saw the abstract for your aquarium talk (my niece sends me Bergen's event
listings, don't ask). You cleared 400 square metres of urchins? By hand?

How is the kelp responding, and how fast are they coming back? I tried
something similar in Bohuslan in 2009 and the urchins were back in four
months.

Lars
"""),
        ),
        reply=dict(
            date="2026-04-02 21:00", cte="quoted-printable", sig=SIG_WORK, sig_pos="end",
            text=T("""
Hi Lars,

By hand, yes: four divers, two days, 12–13 September, mesh bags. We took
11,936 urchins out of 400 m² at Kråkevika (K2). That's 29.8 per m², which is
why we chose it: right on our threshold.

Six months later, on 9 March: 11 kelp recruits per m², mostly Saccharina but
some Laminaria, and urchins back to 2.1 per m² along the edges. Outside the
plot it's still about 35.

So far much slower than your four months in Bohuslän. My guesses are the
cold winter and a healthy wolf-fish population next door. The real test is
the autumn: if the edges pass 10 per m², the recruits are lunch.

Hope you're well, and still refusing to retire.

Ada
"""),
        ),
    ),
    # 23 -- Per Vold, wooden-boat forum, tar mix
    dict(
        incoming=dict(
            date="2026-02-09 20:00", frm=PER, to=[ADA_HOME],
            subject="Your forum question: tar mix for a snekke",
            text=T("""
Hi Ada,

Saw your post about the snekke. For the inside, don't use straight pine
tar; it never dries and you'll be sticky until Christmas. What mix are you
planning? I'd say linseed oil plus tar, thinned for the first coat.

Per
"""),
        ),
        reply=dict(
            date="2026-02-10 19:15", cte="quoted-printable",
            text=T("""
Hi Per,

Thanks, that's almost exactly where I ended up: 1 part raw linseed oil to
1 part pine tar, first coat thinned with 10 % pure gum turpentine, and the
tin warmed in a bucket of hot water first. Brush thin, wipe off the excess
after 30 minutes, three coats a week apart.

She's a 1962 snekke from the Tveit yard in Rosendal, 6.4 m, larch on oak,
so very thirsty wood.

If you know anyone selling copper rivets in bulk, I'll need about 300 for
three planks.

— Ada
"""),
        ),
    ),
    # 24 -- Hanne, outreach talk (incoming multipart/alternative)
    dict(
        incoming=dict(
            date="2026-03-18 09:40", frm=HANNE, to=[ADA_WORK], fmt="alt",
            subject="Aquarium talk?",
            text=T("""
Ada,

Since you volunteered in front of the advisory board: the aquarium has a
Sunday lecture slot on 26 April at 13:00. 20 minutes plus questions.

Can you send them a title and an abstract by 1 April?

Hanne
"""),
        ),
        reply=dict(
            date="2026-03-18 10:05", sig=SIG_WORK,
            text=T("""
Yes.

Title: "Who ate the forest? Urchins, kelp and a very slow crime scene."

I'll pass round an empty urchin test (the 74 mm one from my desk drawer)
and let a child count sweets in a 0.25 m2 quadrat, for science.

Abstract to them by 31 March.

Ada
"""),
        ),
    ),
    # 25 -- bike shop service booking
    dict(
        incoming=dict(
            date="2026-03-02 09:10", frm=BIKESHOP, to=[ADA_HOME], cte="quoted-printable",
            subject="Service booking Friday 6 March",
            text=T("""
Hei!

Your bike is booked in for service on Friday 6 March. We have noted: new
chain, rear brake pads, and truing the rear wheel after the broken spoke.

Shall we swap the studded tyres for summer tyres at the same time?

Hilsen
Nordnes Sykkelverksted
Verftsgaten, åpent 10–18
"""),
        ),
        reply=dict(
            date="2026-03-02 12:15", cte="quoted-printable",
            text=T("""
Hei,

Yes to all three. But please leave the studs on until 31 March; it's a rule
of mine, because the bridge is icy at 07:30 until April no matter what the
calendar says. I'll come back on the 31st for the swap.

She's the green steel touring bike with the rain cover that's more tape
than cover. Her name is Grønnsak. She won't answer to it, but still.

— Ada
"""),
        ),
    ),
]

# --------------------------------------------------------------------------
# Incoming mail Ada did not answer
# --------------------------------------------------------------------------

R1_COUNTS = [7, 3, 9, 11, 8, 10, 12, 6, 9, 14, 18, 10, 8, 11, 9, 7, 12, 10, 9, 9]
R1_CSV = "quadrat,urchins,density_per_m2\n" + "".join(
    f"{i},{n},{n * 4}\n" for i, n in enumerate(R1_COUNTS, start=1)
)

UNANSWERED = [
    dict(
        date="2026-03-06 15:30", frm=BIKESHOP, to=[ADA_HOME], cte="base64",
        subject="Sykkelen din er klar",
        text=T("""
Hei Ada!

Grønnsak er klar for henting. Ny kjede, nye bremseklosser bak, bakhjulet er
rettet. Piggdekkene står på til 31. mars, som avtalt.

Totalt: 1 640 kr. Vi har åpent til 18:00 i dag.

Hilsen verkstedet
"""),
    ),
    dict(
        date="2026-04-01 07:00", frm=DENTIST, to=[ADA_HOME], fmt="html",
        subject="Appointment reminder: Thursday 16 April",
        text=T("""
Appointment reminder

Dear Ada Lindqvist, you have an appointment for a check-up on Thursday
16 April at 08:15 with dental hygienist Randi.

Need to change it? https://bryggen-tann.example/min-side
"""),
        html=T("""
<html><body>
<h2>Appointment reminder</h2>
<p>Dear Ada Lindqvist,<br>
you have an appointment for a check-up on <b>Thursday 16 April at 08:15</b>
with dental hygienist Randi.</p>
<p>Need to change it? <a href="https://bryggen-tann.example/min-side">Log in to your page</a>.</p>
<p style="font-size:small">This is an automated message. Please do not reply.</p>
</body></html>
"""),
    ),
    dict(
        date="2026-04-15 11:45", frm=MIREILLE, to=[ADA_WORK], cte="base64",
        subject="Lunch Friday?",
        text=T("""
Pizza on Friday at the new place by the bridge, the one that used to be a
café? Tobias is coming. He says he'll pay. We'll see.

Also, the wolf-fish at L4-17 has a name now. It's Gérard.

M.
"""),
    ),
    dict(
        date="2026-04-22 20:30", frm=SINDRE, to=[ADA_WORK],
        subject="R1 raw counts (CSV)",
        text=T("""
Raw counts from today attached, for the archive. They match your 38.4.

I've ordered the gloves.

S.
"""),
        attachment=("r1_counts_2026-04-22.csv", R1_CSV),
    ),
]

# --------------------------------------------------------------------------
# Newsletters
# --------------------------------------------------------------------------

NEWSLETTERS = [
    dict(
        date="2026-02-16 06:00", frm=JOURNAL, to=[ADA_WORK], fmt="html",
        subject="Journal of Coastal Ecology: Volume 41, Issue 2 is online",
        list_id="JCE table of contents <toc.coastal-ecology-journal.example>",
        text="Volume 41, Issue 2: table of contents (see HTML).\n",
        html=T("""
<html><body>
<h1>Journal of Coastal Ecology</h1>
<p>Volume 41, Issue 2 (February 2026) is now online.</p>
<table border="1" cellpadding="4">
<tr><th>Article</th><th>Pages</th></tr>
<tr><td><a href="https://coastal-ecology-journal.example/41/2/101">Tidal mixing and epiphyte loads on temperate kelp</a></td><td>101&ndash;118</td></tr>
<tr><td><a href="https://coastal-ecology-journal.example/41/2/119">A decade of barrens: revisiting grazing fronts</a></td><td>119&ndash;137</td></tr>
<tr><td><a href="https://coastal-ecology-journal.example/41/2/138">Low-cost temperature loggers for shallow reefs</a></td><td>138&ndash;149</td></tr>
<tr><td><a href="https://coastal-ecology-journal.example/41/2/150">Predator recovery and sea urchin behaviour</a></td><td>150&ndash;166</td></tr>
</table>
<p><a href="https://coastal-ecology-journal.example/alerts/unsubscribe">Unsubscribe from issue alerts</a></p>
</body></html>
"""),
    ),
    dict(
        date="2026-03-27 07:30", frm=BOAT_NEWS, to=[ADA_HOME], fmt="html",
        legacy=True,  # iso-8859-1 HTML body, latin-1 encoded From and Subject
        subject="Vårnytt fra Trebåtlaget",
        list_id="Trebaatlaget Vestland <nytt.trebatlaget.example>",
        text="Spring news from the wooden-boat association (see HTML).\n",
        html=T("""
<html><body>
<h2>Vårnytt fra Trebåtlaget Vestland</h2>
<p>Kjære medlemmer,<br>
the season is nearly here. A few dates for the calendar:</p>
<p><b>18 April:</b> open workshop on clinker plank replacement, with steam box demonstration.<br>
<b>9 May:</b> tar-boiling day (bring your own tin).<br>
<b>13 June:</b> the annual coastal rally for snekker and færinger.</p>
<p>Members' boats for sale and wanted: <a href="https://trebatlaget.example/marked">see the market page</a>.</p>
<p>Med vennlig hilsen,<br>Styret</p>
<p><a href="https://trebatlaget.example/avmeld">Meld deg av</a></p>
</body></html>
"""),
    ),
    dict(
        date="2026-04-03 08:00", frm=CYCLE_NEWS, to=[ADA_HOME], fmt="html",
        subject="Sykkelbyen Bergen: April newsletter",
        list_id="Sykkelbyen Bergen <april.sykkelbyen.example>",
        text="Cycling newsletter for April (see HTML).\n",
        html=T("""
<html><body>
<h2>Sykkelbyen Bergen &ndash; April</h2>
<p>Spring is here, and so is the annual <b>cycle-to-work challenge</b>, 1&ndash;31 May.<br>
Register your workplace team <a href="https://sykkelbyen.example/challenge">on the challenge page</a>.</p>
<p>Roadworks: the cycle lane on the east side of Puddefjordsbroen will be closed at night
from 14 to 18 April.</p>
<p>Reminder: the studded-tyre season is over. Your neighbours&rsquo; ears thank you.</p>
<p><a href="https://sykkelbyen.example/unsubscribe">Unsubscribe</a></p>
</body></html>
"""),
    ),
    dict(
        date="2026-04-28 18:00", frm=KOR_NEWS, to=[ADA_HOME], fmt="alt", cte="quoted-printable",
        subject="Nordnes Kor: konsertinfo 9. mai",
        list_id="Nordnes Kor members <medlemmer.nordneskor.example>",
        text=T("""
Kjære kor,

Concert information for Saturday 9 May:

- Call time 16:30 in Klosterhallen, concert at 18:00
- Black clothes, one colour accessory
- Tickets 200 kr, children free; sell to everyone you have ever met
- Bake sale at the interval: deliver your baking to Liv by 17:00

Autumn trip fund so far: 11 400 kr.

Styret, Nordnes Kor
https://nordneskor.example/medlem
"""),
    ),
]

# --------------------------------------------------------------------------
# Messages Ada sent first
# --------------------------------------------------------------------------

ADA_FIRST = [
    dict(
        date="2026-02-14 21:00", frm=ADA_HOME, to=[KARIN], cte="quoted-printable",
        subject="Bjørn is five (and a tooth fairy ruling)",
        text=T("""
Karin!

Bjørn turned five today. Five years since I mixed rye and water in a jar
because the shops were out of yeast and I was out of ideas. I celebrated by
baking two Tuesday loaves on a Saturday, which confused everyone, including
me.

Re Elis's tooth: the official ruling from Bergen is that the Norwegian tooth
fairy works across the border and pays in kroner, which is a better rate.
Tell him Aunt Ada checked.

Pixel sends a slow blink.

— Ada
"""),
    ),
    dict(
        date="2026-03-26 09:15", frm=ADA_WORK, to=[HANNE],
        subject="Holiday in July",
        text=T("""
Hi Hanne,

Putting in for holiday 13-17 July, the weekdays of my sister's visit, plus
29 June to 3 July to recover from Svalbard and sort the samples' paperwork
from home if needed.

The L4 tag re-measure is planned for the week of 3 August, so nothing in
the field is waiting on me in July.

Ada

-- 
Ada Lindqvist
Fjord Lab, Bergen
"""),
    ),
    dict(
        date="2026-04-13 16:40", frm=ADA_WORK, to=[SINDRE, MIREILLE, TOBIAS],
        cte="quoted-printable",
        subject="Field days this month: checklist",
        text=T("""
Hi all,

Tomorrow (14 April): L4 Lyngholmen. Tare II leaves Marineholmen at 08:00.
Mireille and I dive; Tobias drives. Kelp tagging, 40 plants, plus the
6 m urchin transect.

22 April: R1 Rognaskjær. Leaves 07:30. Sindre and I dive, Tobias drives.

Checklist, both days:
- 2 quadrats (0.25 m²), 100 m tape, slates, pencils
- calipers (the non-sticky pair, Sindre)
- hole punch and numbered ties (14th only)
- first aid kit, O2 kit, VHF
- coffee that Tobias approves of

Counts go into the spreadsheet the same evening. Not tomorrow. The same
evening.

Ada
"""),
    ),
]

# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------

UTC = dt.timezone.utc
CET = dt.timezone(dt.timedelta(hours=1))
CEST = dt.timezone(dt.timedelta(hours=2))
DST_START = dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def parse_local(stamp: str) -> dt.datetime:
    """Europe/Oslo local time (2026 rules) from "YYYY-MM-DD HH:MM"."""
    naive = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M")
    winter = naive.replace(tzinfo=CET)
    return winter if winter < DST_START else naive.replace(tzinfo=CEST)


def domain_of(addr: str) -> str:
    return addr.rsplit("@", 1)[1]


def text_to_html(text: str) -> str:
    out = []
    for para in text.strip().split("\n\n"):
        lines = []
        for line in para.split("\n"):
            esc = html.escape(line, quote=False)
            esc = re.sub(r"(https?://\S+)", r'<a href="\1">\1</a>', esc)
            lines.append(esc)
        out.append("<p>" + "<br>\n".join(lines) + "</p>")
    return "<html><body>\n" + "\n".join(out) + "\n</body></html>\n"


def quote_block(when: dt.datetime, name: str, text: str) -> str:
    head = f"On {when:%a}, {when.day} {when:%b %Y} at {when:%H:%M}, {name} wrote:"
    quoted = [("> " + line) if line else ">" for line in text.rstrip("\n").split("\n")]
    return head + "\n" + "\n".join(quoted) + "\n"


def is_ascii(s: str) -> bool:
    return all(ord(c) < 128 for c in s)


def build_legacy(spec: dict, msg_id: str, when: dt.datetime) -> Message:
    """compat32 message: iso-8859-1 body, RFC 2047 iso-8859-1 headers."""
    subtype = "html" if spec.get("fmt") == "html" else "plain"
    body = spec["html"] if subtype == "html" else spec["text"]
    msg = MIMEText(body, subtype, "iso-8859-1")  # quoted-printable
    name, addr = spec["frm"]
    shown = name if is_ascii(name) else Header(name, "iso-8859-1").encode()
    msg["From"] = f"{shown} <{addr}>"
    msg["To"] = ", ".join(formataddr(p) for p in spec["to"])
    subject = spec["subject"]
    msg["Subject"] = subject if is_ascii(subject) else Header(subject, "iso-8859-1").encode()
    _common_headers(msg, spec, msg_id, when)
    return msg


def _common_headers(msg: Message, spec: dict, msg_id: str, when: dt.datetime) -> None:
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = msg_id
    if spec.get("in_reply_to"):
        msg["In-Reply-To"] = spec["in_reply_to"]
        msg["References"] = spec["in_reply_to"]
    if spec.get("list_id"):
        msg["List-Id"] = spec["list_id"]
        msg["List-Unsubscribe"] = f"<mailto:unsubscribe@{domain_of(spec['frm'][1])}>"
        msg["Precedence"] = "bulk"


def build(spec: dict, number: int) -> Message:
    when = parse_local(spec["date"])
    msg_id = f"<msg-{number:03d}@{domain_of(spec['frm'][1])}>"
    if spec.get("legacy"):
        msg = build_legacy(spec, msg_id, when)
    else:
        msg = EmailMessage(policy=policy.default)
        msg["From"] = formataddr(spec["frm"])
        msg["To"] = ", ".join(formataddr(p) for p in spec["to"])
        msg["Subject"] = spec["subject"]
        _common_headers(msg, spec, msg_id, when)
        if spec.get("from_ada"):
            msg["User-Agent"] = "Thunderbird-ish/1.0 (fictional)"
        fmt = spec.get("fmt", "plain")
        cte = spec.get("cte")
        text = spec["text"]
        if cte is None and not is_ascii(text):
            cte = "quoted-printable"
        if fmt == "plain":
            msg.set_content(text, cte=cte)
        elif fmt == "html":
            msg.set_content(spec.get("html") or text_to_html(text), subtype="html", cte=cte)
        elif fmt == "alt":
            msg.set_content(text, cte=cte)
            html_body = spec.get("html") or text_to_html(text)
            msg.add_alternative(html_body, subtype="html",
                                cte="quoted-printable" if not is_ascii(html_body) else None)
        else:
            raise ValueError(fmt)
        if spec.get("attachment"):
            fname, data = spec["attachment"]
            msg.add_attachment(data, subtype="plain", filename=fname)
    for i, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_mipo_demo_{number:03d}_{i}")
    addr = spec["frm"][1]
    msg.set_unixfrom(f"From {addr} {time.asctime(when.astimezone(UTC).timetuple())}")
    return msg


def collect_specs() -> list[dict]:
    """All message specs, with replies wired to their incoming message."""
    specs: list[dict] = []
    for t, thread in enumerate(THREADS):
        inc = dict(thread["incoming"], key=f"t{t}-in")
        rep_src = thread["reply"]
        ada = ADA_WORK if ADA_WORK in inc["to"] else ADA_HOME
        inc_when = parse_local(inc["date"])
        body = rep_src["text"]
        sig = rep_src.get("sig")
        quote = quote_block(inc_when, inc["frm"][0], inc["text"])
        if sig and rep_src.get("sig_pos", "before") == "before":
            body = body + "\n-- \n" + sig + "\n\n" + quote
        elif sig:
            body = body + "\n" + quote + "\n-- \n" + sig + "\n"
        else:
            body = body + "\n" + quote
        subject = inc["subject"]
        rep = dict(
            key=f"t{t}-re", date=rep_src["date"], frm=ada, to=[inc["frm"]],
            subject=subject if subject.lower().startswith("re:") else "Re: " + subject,
            text=body, cte=rep_src.get("cte"), reply_to_key=inc["key"], from_ada=True,
        )
        specs += [inc, rep]
    specs += [dict(s, key=f"u{i}") for i, s in enumerate(UNANSWERED)]
    specs += [dict(s, key=f"n{i}") for i, s in enumerate(NEWSLETTERS)]
    specs += [dict(s, key=f"s{i}", from_ada=True) for i, s in enumerate(ADA_FIRST)]
    specs.sort(key=lambda s: (parse_local(s["date"]), s["key"]))
    ids = {}
    for n, s in enumerate(specs, start=1):
        s["number"] = n
        ids[s["key"]] = f"<msg-{n:03d}@{domain_of(s['frm'][1])}>"
    for s in specs:
        if s.get("reply_to_key"):
            s["in_reply_to"] = ids[s["reply_to_key"]]
    return specs


def write_mbox(path: pathlib.Path, messages: list[Message]) -> None:
    for p in (path, path.with_name(path.name + ".lock")):
        if p.exists():
            p.unlink()
    box = mailbox.mbox(str(path), create=True)
    try:
        for m in messages:
            box.add(m)
        box.flush()
    finally:
        box.close()


def main() -> None:
    MAIL_DIR.mkdir(parents=True, exist_ok=True)
    specs = collect_specs()
    built = [(s, build(s, s["number"])) for s in specs]
    write_mbox(MAIL_DIR / "ada.mbox", [m for _, m in built])
    write_mbox(MAIL_DIR / "sent.mbox",
               [m for s, m in built if s["frm"][1] in ADA_ADDRESSES])
    n_sent = sum(1 for s in specs if s["frm"][1] in ADA_ADDRESSES)
    print(f"wrote {len(specs)} messages to {MAIL_DIR / 'ada.mbox'}")
    print(f"wrote {n_sent} messages to {MAIL_DIR / 'sent.mbox'}")


if __name__ == "__main__":
    main()
