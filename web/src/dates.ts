/**
 * When a photo was taken, for the timeline: EXIF DateTimeOriginal (metadata.takenAt, the camera's
 * local time, no zone: taken as it is) or else the upload time in the browser's time zone.
 */
import type { PublicImage } from "../../models/images/public-image.ts";

/** "2024-05-01T12:30:00": a local date-time that sorts as a string. */
export function takenKey(image: Pick<PublicImage, "createdAt"> & { metadata: { takenAt?: string | null } | null }): string {
	if (image.metadata?.takenAt) return image.metadata.takenAt.slice(0, 19);
	const d = new Date(image.createdAt);
	const pad = (n: number) => String(n).padStart(2, "0");
	return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "2024-05-01" */
export const dayOf = (key: string) => key.slice(0, 10);
/** "2024-05" */
export const monthOf = (key: string) => key.slice(0, 7);

/** A local date from a "YYYY-MM[-DD]" key (noon: no zone shift can change the day). */
function dateOf(key: string): Date {
	const [year, month, day = 1] = key.split("-").map(Number);
	return new Date(year, month - 1, day, 12);
}

/** "April 2023" */
export function monthLabel(month: string): string {
	return dateOf(month).toLocaleDateString(undefined, { month: "long", year: "numeric" });
}

/** "Apr" */
export function shortMonthLabel(month: string): string {
	return dateOf(month).toLocaleDateString(undefined, { month: "short" });
}

/** "Wed, 5 April" (the month heading above gives the year). */
export function dayLabel(day: string): string {
	return dateOf(day).toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "long" });
}

/** "5 April 2023, 06:07" */
export function takenLabel(key: string): string {
	const [date, time = ""] = key.split("T");
	return `${dateOf(date).toLocaleDateString(undefined, { dateStyle: "long" })}${time ? `, ${time.slice(0, 5)}` : ""}`;
}
