"""The demo's fixed content: organisations, places, names and reasons, all invented.

Contacts use reserved ranges so nothing can reach a real person: e-mail under ``example.org`` /
``.example`` (RFC 2606) and phone numbers from Ofcom's drama range 07700 900000-900999.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..models import Topic

DEMO_PASSWORD: Final = "demo-password-1"  # noqa: S105 - published on purpose: the demo's sign-in password
"""Every demo user signs in with this password; it is hashed once per load (argon2 is slow by design)."""

EVALUATION_SLUG: Final = "demo-evaluation"
EVALUATED_INSTRUMENTS: Final = ("swemwbs", "phq9", "hhi")
"""Outcome measures every participant completes at baseline and follow-up (shipped instrument codes)."""


@dataclass(frozen=True)
class RegionSpec:
    slug: str
    name: str
    venues: tuple[str, ...]


@dataclass(frozen=True)
class CoordinatorSpec:
    """A coordinator, the name part of their e-mail address, and the indexes of the regions they cover."""

    label: str
    display_name: str
    region_indexes: tuple[int, ...]


@dataclass(frozen=True)
class OrganisationSpec:
    slug: str
    name: str
    reference_prefix: str
    regions: tuple[RegionSpec, RegionSpec, RegionSpec]
    coordinators: tuple[CoordinatorSpec, ...]
    admin_name: str
    evaluator_name: str
    group_count: int

    def email(self, local_part: str) -> str:
        return f"{local_part}@{self.slug}.example"


ORGANISATIONS: Final = (
    OrganisationSpec(
        slug="northern-peer-support",
        name="Northern Peer Support Network",
        reference_prefix="NPS",
        regions=(
            RegionSpec("tyneside", "Tyneside", ("Riverside Community Hub", "St Hilda's Church Hall")),
            RegionSpec("wearside", "Wearside", ("Millfield Library Meeting Room", "The Wear Street Centre")),
            RegionSpec("teesside", "Teesside", ("Transporter Community Rooms", "Linthorpe Wellbeing Café")),
        ),
        coordinators=(
            CoordinatorSpec("north", "Morag Fenwick", (0, 1)),
            CoordinatorSpec("south", "Dev Ormerod", (2,)),
        ),
        admin_name="Harriet Lowther",
        evaluator_name="Dr Ada Netherby",
        group_count=22,
    ),
    OrganisationSpec(
        slug="coastal-wellbeing",
        name="Coastal Wellbeing Collective",
        reference_prefix="CWC",
        regions=(
            RegionSpec("west-cornwall", "West Cornwall", ("Harbour Room, Seafront Pavilion", "Chapel Street Rooms")),
            RegionSpec("north-devon", "North Devon", ("Quayside Community Centre", "The Old Lifeboat House")),
            RegionSpec("torbay", "Torbay", ("Esplanade Wellbeing Centre", "Upton Park Pavilion")),
        ),
        coordinators=(
            CoordinatorSpec("west", "Tamsin Carrow", (0, 1)),
            CoordinatorSpec("east", "Olu Pennock", (2,)),
        ),
        admin_name="Wes Trebarwith",
        evaluator_name="Dr Ines Quarry",
        group_count=22,
    ),
)

GROUP_STEMS: Final[dict[Topic, tuple[str, ...]]] = {
    Topic.DEPRESSION: ("Brighter Days", "Low Mood Peer Circle", "Small Steps"),
    Topic.ANXIETY: ("Calm Minds", "Anxiety Peer Support", "Steady Ground"),
    Topic.BURNOUT: ("Recharge", "Carers' Breathing Space", "Burnout Recovery Circle"),
    Topic.LONG_TERM_CONDITIONS: ("Living Well", "Chronic Pain Peer Group", "Long Covid Peer Circle"),
    Topic.BEREAVEMENT: ("Bereavement Circle", "Loss and Grief Peer Support", "Remembering Together"),
    Topic.LONELINESS: ("Friendship Café", "Connect and Chat", "Walk and Talk"),
}

FIRST_NAMES: Final = (
    "Aaliyah", "Alex", "Amira", "Ben", "Beth", "Bilal", "Callum", "Carys", "Chloe", "Connor", "Dani", "Declan",
    "Dev", "Eilidh", "Ellie", "Erin", "Ewan", "Farah", "Finn", "Freya", "Gethin", "Grace", "Hamza", "Hannah",
    "Imogen", "Isla", "Jack", "Jas", "Jodie", "Kai", "Kerry", "Kian", "Leah", "Liam", "Lola", "Luca", "Maisie",
    "Marek", "Maya", "Mo", "Nadia", "Niamh", "Noah", "Olu", "Owen", "Pat", "Priya", "Rhys", "Robin", "Rosa",
    "Ruby", "Sam", "Sana", "Shaun", "Sian", "Sol", "Tariq", "Tess", "Tom", "Una", "Viv", "Yusuf", "Zainab",
    "Zara", "Zofia",
)  # fmt: skip

SURNAMES: Final = (
    "Ashworth", "Bramley", "Dunmore", "Ellery", "Garside", "Holloway", "Ingleby", "Jessop", "Kettlewell",
    "Marsden", "Ormsby", "Pennock", "Rudd", "Sowerby", "Thwaite", "Umpleby", "Varley", "Wainwright", "Yeadon",
    "Penhallow", "Tregear", "Polglase", "Rosewarne", "Nankervis", "Chenoweth", "Trevail", "Hocking",
)  # fmt: skip

CANCELLATION_REASONS: Final = (
    "Facilitator unwell and no cover available",
    "Severe weather warning: travel not advised",
    "Facilitators at the quarterly training day",
    "Low numbers expected over the school holiday",
)
VENUE_CANCELLATION_REASONS: Final = (
    "Venue double-booked",
    "Building closed for heating repairs",
)
ONLINE_CANCELLATION_REASONS: Final = ("Video platform outage",)

SAFEGUARDING_NOTE: Final = (
    "Coordinator called the participant the same day; safety plan agreed and GP informed with their consent."
)
