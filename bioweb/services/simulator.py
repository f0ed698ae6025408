"""Generated samples for test-mode devices (docs/samples.md, Test mode): `simulate`
fills one metric of a test-mode device with plausible data over the last N days, so a
dashboard, a chart or a calculation has something to show within a minute.

What is generated follows one person's day in the owner's time zone: asleep at night, a few
walks and on some days a workout. Heart rate has a day/night rhythm (about 55-65 asleep,
70-110 awake, 120-165 in a workout) every 5 minutes; steps come in 5-minute intervals while
walking, none at rest; body measurements drift slowly, one or two a day. Any other type
follows its aggregation style (bioweb/quantitytypes.py): discrete ones scatter around a
plausible value of the type, hourly while awake; cumulative ones come in bursts. Values are
in the metric's own unit (a metric in lb gets pounds, `%` stays a fraction from 0 to 1).

Everything of a local day is drawn from random.Random seeded with the metric (and, for the
day's plan, the device, so a watch's heart rate and steps agree on when the walks were) and
the date, on a grid of epoch-aligned 5-minute steps, and every sample's client_sample_id is
`sim-<metric>-<epoch ms>`: a second run over the same days stores nothing twice. Samples go
through samples.submit_batch, 1,000 at a time, like any client's: validated, idempotent,
rollups kept exact.
"""

from __future__ import annotations

import math
import random
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

import sqlalchemy as sa

from .. import quantitytypes
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..models import MAX_ID, Device, DeviceState, Metric, User, utcnow
from ..readmodels import SimulationResult
from . import Actor, metrics, samples
from .events import Origin

MAX_DAYS = 366
STEP = timedelta(minutes=5)
_STEP_SECONDS = int(STEP.total_seconds())

_metrics, _devices, _users = Metric.__table__, Device.__table__, User.__table__

Kind = Literal["heart", "walks", "bursts", "meals", "daily", "hourly"]


@dataclass(frozen=True)
class Profile:
    """How one type is generated, in its canonical unit.

    heart: heart rate by the day's plan; walks: an amount per step while walking; bursts:
    `value` per 5 minutes in a few bursts a day; meals: `value` per meal; daily: one or two a
    day around `value`, drifting over weeks by `drift` (a fraction); hourly: around `value`
    every hour awake, `spread` (a fraction) apart.
    """

    kind: Kind
    value: float
    spread: float = 0.05
    drift: float = 0.0


def _walks(per_step: float) -> Profile:
    return Profile("walks", per_step)


def _bursts(per_interval: float) -> Profile:
    return Profile("bursts", per_interval)


def _daily(value: float, spread: float = 0.01, drift: float = 0.02) -> Profile:
    return Profile("daily", value, spread, drift)


def _hourly(value: float, spread: float = 0.05) -> Profile:
    return Profile("hourly", value, spread)


# Plausible values in each type's canonical unit (the table's `unit`); types not listed take
# their unit's entry in _BY_UNIT.
PROFILES: dict[str, Profile] = {
    "heartRate": Profile("heart", 0),
    "stepCount": _walks(1),
    "distanceWalkingRunning": _walks(0.75),
    "activeEnergyBurned": _walks(0.045),
    "pushCount": _walks(0.8),
    "basalEnergyBurned": _bursts(6),
    "distanceCycling": _bursts(1500),
    "distanceSwimming": _bursts(150),
    "distanceWheelchair": _bursts(300),
    "distanceDownhillSnowSports": _bursts(2000),
    "distanceCrossCountrySkiing": _bursts(800),
    "distancePaddleSports": _bursts(500),
    "distanceRowing": _bursts(900),
    "distanceSkatingSports": _bursts(800),
    "flightsClimbed": _bursts(1),
    "appleExerciseTime": _bursts(5),
    "appleMoveTime": _bursts(5),
    "appleStandTime": _bursts(2),
    "swimmingStrokeCount": _bursts(150),
    "timeInDaylight": _bursts(5),
    "dietaryEnergyConsumed": Profile("meals", 600),
    "dietaryWater": Profile("meals", 300),
    "dietaryCarbohydrates": Profile("meals", 70),
    "dietaryProtein": Profile("meals", 25),
    "dietaryFatTotal": Profile("meals", 22),
    "dietarySugar": Profile("meals", 20),
    "dietaryFiber": Profile("meals", 8),
    "dietarySodium": Profile("meals", 0.8),
    "dietaryCaffeine": Profile("meals", 0.08),
    "bodyMass": _daily(75),
    "leanBodyMass": _daily(58),
    "bodyMassIndex": _daily(24.5),
    "bodyFatPercentage": _daily(0.22, drift=0.04),
    "height": _daily(1.75, spread=0.002, drift=0),
    "waistCircumference": _daily(0.85),
    "restingHeartRate": _daily(60, spread=0.05, drift=0.03),
    "walkingHeartRateAverage": _daily(95, spread=0.05, drift=0.03),
    "heartRateRecoveryOneMinute": _daily(25, spread=0.1),
    "vo2Max": _daily(40, drift=0.03),
    "bodyTemperature": _daily(36.8, spread=0.005, drift=0),
    "basalBodyTemperature": _daily(36.5, spread=0.004, drift=0),
    "appleSleepingWristTemperature": _daily(34.5, spread=0.008, drift=0),
    "appleSleepingBreathingDisturbances": _daily(4, spread=0.3),
    "bloodPressureSystolic": _daily(118, spread=0.05),
    "bloodPressureDiastolic": _daily(76, spread=0.05),
    "atrialFibrillationBurden": _daily(0.01, spread=0.3),
    "heartRateVariabilitySDNN": _hourly(45, 0.25),
    "oxygenSaturation": _hourly(0.97, 0.01),
    "respiratoryRate": _hourly(15, 0.1),
    "bloodGlucose": _hourly(100, 0.12),
    "bloodAlcoholContent": _hourly(0.0002, 0.5),
    "peripheralPerfusionIndex": _hourly(0.03, 0.3),
    "walkingAsymmetryPercentage": _hourly(0.03, 0.3),
    "walkingDoubleSupportPercentage": _hourly(0.28, 0.05),
    "appleWalkingSteadiness": _daily(0.9, spread=0.02),
    "walkingSpeed": _hourly(1.3, 0.1),
    "walkingStepLength": _hourly(0.7, 0.05),
    "sixMinuteWalkTestDistance": _daily(500, spread=0.05),
    "stairAscentSpeed": _hourly(0.5, 0.1),
    "stairDescentSpeed": _hourly(0.55, 0.1),
    "runningSpeed": _hourly(3.0, 0.1),
    "runningPower": _hourly(250, 0.1),
    "runningStrideLength": _hourly(1.1, 0.08),
    "runningVerticalOscillation": _hourly(8, 0.1),
    "runningGroundContactTime": _hourly(250, 0.08),
    "cyclingSpeed": _hourly(7, 0.15),
    "cyclingPower": _hourly(180, 0.15),
    "cyclingFunctionalThresholdPower": _daily(220, spread=0.02),
    "cyclingCadence": _hourly(85, 0.08),
    "crossCountrySkiingSpeed": _hourly(3.5, 0.1),
    "paddleSportsSpeed": _hourly(1.8, 0.1),
    "rowingSpeed": _hourly(3.5, 0.1),
    "physicalEffort": _hourly(3.5, 0.3),
    "electrodermalActivity": _hourly(5e-6, 0.3),
    "forcedExpiratoryVolume1": _daily(3.5, spread=0.04),
    "forcedVitalCapacity": _daily(4.5, spread=0.04),
    "peakExpiratoryFlowRate": _daily(450, spread=0.05),
    "environmentalAudioExposure": _hourly(65, 0.12),
    "headphoneAudioExposure": _hourly(70, 0.1),
    "environmentalSoundReduction": _hourly(20, 0.2),
    "uvExposure": _hourly(3, 0.4),
    "underwaterDepth": _hourly(10, 0.3),
    "waterTemperature": _hourly(20, 0.1),
}

# By canonical unit, for the types not listed above: discrete ones hourly around this value,
# cumulative ones in bursts (or, for nutrients in g, per meal) of it.
_BY_UNIT: dict[str, float] = {
    "count/min": 70,
    "count": 1,
    "%": 0.5,
    "degC": 36.8,
    "m/s": 1.5,
    "ms": 50,
    "W": 200,
    "m": 1,
    "cm": 8,
    "kg": 70,
    "mmHg": 100,
    "mg/dL": 100,
    "L": 4,
    "L/min": 400,
    "dBASPL": 65,
    "g": 0.005,
    "min": 5,
    "kcal": 30,
    "IU": 2,
}

# From a canonical unit to another unit the table accepts for it: value * factor.
_FACTORS: dict[tuple[str, str], float] = {
    ("kg", "lb"): 2.20462262,
    ("kg", "g"): 1000,
    ("kg", "st"): 0.157473044,
    ("m", "km"): 0.001,
    ("m", "mi"): 0.000621371192,
    ("m", "ft"): 3.2808399,
    ("m", "yd"): 1.0936133,
    ("m", "cm"): 100,
    ("m", "in"): 39.3700787,
    ("cm", "mm"): 10,
    ("cm", "in"): 0.393700787,
    ("kcal", "kJ"): 4.184,
    ("kcal", "Cal"): 1,
    ("min", "s"): 60,
    ("min", "hr"): 1 / 60,
    ("count/min", "count/s"): 1 / 60,
    ("ms", "s"): 0.001,
    ("m/s", "km/hr"): 3.6,
    ("m/s", "mi/hr"): 2.23693629,
    ("mg/dL", "mmol<180.1558800000541>/L"): 10 / 180.1558800000541,
    ("S", "mcS"): 1e6,
    ("L", "mL"): 1000,
    ("mL", "L"): 0.001,
    ("mL", "fl_oz_us"): 0.0338140227,
    ("mL", "fl_oz_imp"): 0.0351950652,
    ("mL", "cup_us"): 0.00422675284,
    ("mL", "cup_imp"): 0.00351950652,
    ("g", "mg"): 1000,
    ("g", "mcg"): 1e6,
    ("g", "oz"): 0.0352739619,
}


def _in_unit(value: float, canonical: str, unit: str) -> float:
    """`value` in `canonical` expressed in `unit` (unknown pairs, "other" included: as is)."""
    if canonical == "degC" and unit == "degF":
        return value * 9 / 5 + 32
    return value * _FACTORS.get((canonical, unit), 1.0)


def profile_of(sample_type: str) -> tuple[Profile, str]:
    """How to generate `sample_type`, and the canonical unit its profile's values are in."""
    qtype = quantitytypes.lookup(sample_type) if sample_type != metrics.OTHER else None
    if qtype is None:  # "other": a discrete something, hourly
        return _hourly(50, 0.1), "other"
    known = PROFILES.get(qtype.identifier)
    if known is not None:
        return known, qtype.unit
    value = _BY_UNIT.get(qtype.unit, 1.0)
    if not qtype.is_cumulative:
        return _hourly(value), qtype.unit
    if qtype.category == "Nutrition":
        return Profile("meals", value), qtype.unit
    return _bursts(value), qtype.unit


# --- one person's day ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    start: float  # local hours after midnight
    end: float
    steps_per_minute: float
    heart_rate: float


@dataclass(frozen=True)
class DayPlan:
    """When one local day's person slept, walked and worked out (hours after local midnight)."""

    wake: float
    sleep: float
    resting: float  # heart rate asleep
    awake: float  # heart rate awake, at rest
    activities: tuple[Activity, ...]
    meals: tuple[float, ...]

    def activity_at(self, hour: float) -> Activity | None:
        for activity in self.activities:
            if activity.start <= hour < activity.end:
                return activity
        return None

    def is_asleep(self, hour: float) -> bool:
        return hour < self.wake or hour >= self.sleep


def day_plan(device_id: int, day: date) -> DayPlan:
    """The day of the person wearing device `device_id`: the same for every metric of it."""
    rng = random.Random(f"plan:{device_id}:{day.isoformat()}")
    wake = rng.uniform(6.0, 7.75)
    sleep = rng.uniform(22.0, 23.75)
    activities = []
    for _ in range(rng.randint(2, 5)):  # walks: to work, at lunch, the dog, ...
        start = rng.uniform(wake + 0.5, sleep - 1.0)
        minutes = rng.choice((10, 15, 20, 25, 30, 45))
        activities.append(Activity(start, start + minutes / 60, rng.uniform(85, 120), rng.uniform(95, 112)))
    if rng.random() < 0.5:  # a run on about half the days, in the morning or the evening
        start = rng.choice((wake + 0.25, rng.uniform(17.5, 19.5)))
        minutes = rng.choice((30, 40, 45, 60))
        activities.append(Activity(start, start + minutes / 60, rng.uniform(150, 172), rng.uniform(135, 162)))
    activities.sort(key=lambda a: a.start)
    meals = (wake + rng.uniform(0.25, 1.0), rng.uniform(12.0, 13.5), rng.uniform(18.5, 20.5))
    return DayPlan(
        wake=wake,
        sleep=sleep,
        resting=rng.uniform(55, 62),
        awake=rng.uniform(70, 82),
        activities=tuple(activities),
        meals=meals,
    )


# --- generating ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The metric to fill, with what deciding and generating need."""

    metric_id: int
    device_id: int
    sample_type: str
    unit: str
    is_test_mode: bool
    device_state: int
    time_zone: str


@dataclass(frozen=True)
class Generated:
    start: datetime
    end: datetime
    quantity: float
    active: bool


def _point(moment: datetime, value: float) -> Generated:
    """A reading at one instant (discrete types, meals)."""
    return Generated(moment, moment, value, False)


def _round(value: float, whole: bool) -> float:
    if whole:
        return float(max(1, round(value)))
    if value == 0:
        return 0.0
    # four significant digits: 75.23 kg, 0.9712, 0.000005123 S
    return round(value, max(0, 3 - math.floor(math.log10(abs(value)))))


class Simulation:
    """The generated samples of one metric, a local day at a time."""

    def __init__(self, target: Target):
        self.target = target
        self.profile, self.canonical = profile_of(target.sample_type)
        try:
            self.zone: tzinfo = zoneinfo.ZoneInfo(target.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.zone = UTC
        self.is_fraction = target.unit == "%"
        qtype = quantitytypes.lookup(target.sample_type) if target.sample_type != metrics.OTHER else None
        # Counts of things (steps, flights, drinks) are whole numbers; a BMI (also "count") is not.
        self.whole = bool(qtype and qtype.is_cumulative and qtype.unit == "count")
        # This metric's person: a body mass around 60-90 kg rather than always 75.
        person = random.Random(f"person:{target.metric_id}")
        self.scale = person.uniform(0.85, 1.15)
        self.phases = (person.uniform(0, 2 * math.pi), person.uniform(0, 2 * math.pi))

    def _grid(self, day: date) -> Iterator[tuple[datetime, float]]:
        """The epoch-aligned 5-minute steps of a local day, with their local hour."""
        begin = datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(UTC)
        moment = datetime.fromtimestamp(math.ceil(begin.timestamp() / _STEP_SECONDS) * _STEP_SECONDS, UTC)
        while moment < end:
            local = moment.astimezone(self.zone)
            yield moment, local.hour + local.minute / 60
            moment += STEP

    def _moment(self, day: date, hour: float) -> datetime:
        """The grid step at or just before `hour` of local `day`."""
        begin = datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)
        seconds = begin.timestamp() + hour * 3600
        return datetime.fromtimestamp(seconds // _STEP_SECONDS * _STEP_SECONDS, UTC)

    def day(self, day: date) -> list[Generated]:
        """Every sample of local `day` (whatever part of it is asked for, the same ones)."""
        plan = day_plan(self.target.device_id, day)
        rng = random.Random(f"{self.target.metric_id}:{day.isoformat()}")
        kind = self.profile.kind
        if kind == "heart":
            return self._heart(day, plan, rng)
        if kind in ("walks", "bursts"):
            return self._amounts(day, plan, rng)
        if kind == "meals":
            value = self.profile.value * self.scale
            return [_point(self._moment(day, hour), value * rng.uniform(0.5, 1.5)) for hour in plan.meals]
        if kind == "daily":
            return self._daily(day, plan, rng)
        return self._hourly(day, plan, rng)

    def _heart(self, day: date, plan: DayPlan, rng: random.Random) -> list[Generated]:
        out = []
        level = 0.0  # a slow wander, so neighbouring readings look alike
        for moment, hour in self._grid(day):
            level = 0.8 * level + rng.gauss(0, 1.5)
            activity = plan.activity_at(hour)
            if plan.is_asleep(hour):
                value = plan.resting + level + rng.gauss(0, 1.5)
            elif activity is not None:
                value = activity.heart_rate + 2 * level + rng.gauss(0, 3)
            else:
                value = plan.awake + 2 * level + rng.gauss(0, 4)
                if rng.random() < 0.04:  # stairs, a coffee, a fright
                    value += rng.uniform(10, 25)
            out.append(
                Generated(moment, moment, float(round(min(max(value, 40), 200))), activity is not None)
            )
        return out

    def _amounts(self, day: date, plan: DayPlan, rng: random.Random) -> list[Generated]:
        """Cumulative amounts over 5-minute intervals: while walking (per step), or in bursts."""
        out = []
        per_step = self.profile.kind == "walks"
        bursts: list[tuple[float, float]] = []
        if not per_step:
            for _ in range(rng.randint(2, 6)):
                start = rng.uniform(plan.wake, plan.sleep - 0.5)
                bursts.append((start, start + rng.choice((5, 10, 15, 20, 30)) / 60))
        for moment, hour in self._grid(day):
            if plan.is_asleep(hour):
                continue
            if per_step:
                activity = plan.activity_at(hour)
                if activity is not None:
                    steps = activity.steps_per_minute * 5 * rng.uniform(0.85, 1.1)
                elif rng.random() < 0.25:  # pottering about
                    steps = rng.uniform(10, 150)
                else:
                    continue
                value = steps * self.profile.value
            elif any(start <= hour < end for start, end in bursts):
                value = self.profile.value * self.scale * rng.uniform(0.5, 1.5)
            else:
                continue
            out.append(Generated(moment, moment + STEP, value, True))
        return out

    def _slow(self, day: date) -> float:
        """A drift over weeks (a fraction), the same on the same date whatever the run."""
        number = day.toordinal()
        return math.sin(2 * math.pi * number / 60 + self.phases[0]) + 0.3 * math.sin(
            2 * math.pi * number / 11 + self.phases[1]
        )

    def _daily(self, day: date, plan: DayPlan, rng: random.Random) -> list[Generated]:
        centre = self.profile.value * self.scale * (1 + self.profile.drift * self._slow(day))
        hours = [plan.wake + rng.uniform(0.1, 0.5)]
        if rng.random() < 0.4:
            hours.append(plan.sleep - rng.uniform(0.2, 1.0))
        return [
            _point(self._moment(day, hour), rng.gauss(centre, centre * self.profile.spread)) for hour in hours
        ]

    def _hourly(self, day: date, plan: DayPlan, rng: random.Random) -> list[Generated]:
        centre = self.profile.value * (1 + 0.02 * self._slow(day))
        out = []
        hour = math.ceil(plan.wake)
        while hour < plan.sleep:
            moment = self._moment(day, hour)
            out.append(_point(moment, rng.gauss(centre, centre * self.profile.spread)))
            hour += 1
        return out

    def quantity(self, generated: Generated) -> float:
        """A generated value in the metric's unit, rounded, and inside what the unit allows."""
        value = _in_unit(max(generated.quantity, 0.0), self.canonical, self.target.unit)
        if self.is_fraction:
            value = min(max(value, 0.0), 1.0)
        return _round(value, self.whole) if value else 0.0

    def items(self, start: datetime, finish: datetime) -> Iterator[dict[str, Any]]:
        """The samples (as submitted) that lie wholly within [start, finish], oldest first."""
        first = start.astimezone(self.zone).date()
        last = finish.astimezone(self.zone).date()
        heart = self.profile.kind == "heart"
        day = first
        while day <= last:
            for generated in self.day(day):
                if generated.start < start or generated.end > finish:
                    continue
                item: dict[str, Any] = {
                    "metric_id": self.target.metric_id,
                    "start_date": generated.start,
                    "end_date": generated.end,
                    "quantity": self.quantity(generated),
                    "sample_motion_context": "Active" if generated.active else "Sedentary",
                    "client_sample_id": f"sim-{self.target.metric_id}-{int(generated.start.timestamp() * 1000)}",
                }
                if heart:
                    item["sample_sensor_location"] = 2  # wrist
                yield item
            day += timedelta(days=1)


# --- the use case --------------------------------------------------------------------------------


def _target(actor: Actor, metric_id: int) -> Target:
    row = None
    if 0 < metric_id <= MAX_ID:
        row = db.session.execute(
            sa.select(
                _metrics.c.id,
                _metrics.c.device_id,
                _metrics.c.sample_type,
                _metrics.c.quantity_type,
                _devices.c.is_test_mode,
                _devices.c.state,
                _users.c.time_zone,
            )
            .select_from(
                _metrics.join(_devices, _devices.c.id == _metrics.c.device_id).join(
                    _users, _users.c.id == _metrics.c.user_id
                )
            )
            .where(_metrics.c.id == metric_id, metrics.visible_to(actor))
        ).first()
    if row is None:
        raise NotFound(f"You have no metric with id {metric_id}.")
    return Target(
        metric_id=row.id,
        device_id=row.device_id,
        sample_type=row.sample_type,
        unit=row.quantity_type,
        is_test_mode=row.is_test_mode,
        device_state=row.state,
        time_zone=row.time_zone or "UTC",
    )


def simulate(
    actor: Actor,
    metric_id: int,
    days: int,
    end: datetime | None = None,
    origin: Origin | None = None,
) -> SimulationResult:
    """Fill metric `metric_id` of a test-mode device with generated samples over the `days`
    days (1 to 366) that end at `end` (an aware time; default and at the latest: now).

    Raises NotFound for a metric that is not the actor's, Conflict for one of a live
    (not test-mode) or disabled device, InvalidInput for days out of range. Stores through
    samples.submit_batch, which commits each batch of 1,000: when a batch is refused midway
    (the device was disabled meanwhile), the earlier ones stay stored (a rerun completes them,
    storing nothing twice) and Conflict says so.
    """
    if not 1 <= days <= MAX_DAYS:
        message = f"must be from 1 to {MAX_DAYS}."
        raise InvalidInput(f"days: {message}", {"days": [message]})
    target = _target(actor, metric_id)
    if target.device_state != DeviceState.ACTIVE:
        raise Conflict(f"Device {target.device_id} is disabled; re-authorize it before filling its metrics.")
    if not target.is_test_mode:
        raise Conflict(
            f"Only test-mode devices can be simulated: device {target.device_id} is a live device, "
            "and generated data must never mix with real readings. Register a device with "
            "is_test_mode true for that."
        )
    now = utcnow()
    finish = min(end.astimezone(UTC), now) if end is not None else now
    start = finish - timedelta(days=days)
    simulation = Simulation(target)
    accepted = duplicates = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal accepted, duplicates
        result = samples.submit_batch(actor, batch, origin)
        accepted += result.accepted
        duplicates += result.duplicates
        if result.rejected:
            fields = result.rejected[0].fields
            reason = "; ".join(f"{name}: {' '.join(problems)}" for name, problems in fields.items())
            raise Conflict(f"Stopped after storing {accepted} generated samples: one was refused ({reason})")
        batch.clear()

    for item in simulation.items(start, finish):
        batch.append(item)
        if len(batch) == samples.MAX_BATCH:
            flush()
    if batch:
        flush()
    return SimulationResult(
        metric_id=target.metric_id,
        days=days,
        accepted=accepted,
        duplicates=duplicates,
        start=start,
        finish=finish,
    )


def owner_of(metric_id: int) -> User:
    """The owner of metric `metric_id` (for the operator's CLI). Raises NotFound."""
    metric = db.session.get(Metric, metric_id) if 0 < metric_id <= MAX_ID else None
    user = (
        db.session.get(User, metric.user_id) if metric is not None and metric.deleted_time is None else None
    )
    if user is None:
        raise NotFound(f"There is no metric with id {metric_id}.")
    return user
